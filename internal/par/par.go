// Package par splits loops across goroutines for the training ops of
// packages ops and fakequant, under one thread setting (layers.SetThreads).
//
// Every split is into contiguous ranges of a loop's index, each range run
// by one goroutine in index order. The callers keep results independent of
// the thread count by what they split: elementwise loops (any range gives
// the same elements), or loops over channels whose reductions each stay
// inside one channel and so inside one goroutine, summed in the order a
// single thread would use. No caller splits a sum that crosses ranges.
package par

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// setting is SetThreads's value; 0 means GOMAXPROCS.
var setting atomic.Int64

// SetThreads sets how many goroutines the parallel ops may use; n < 1
// restores the default, GOMAXPROCS. It may be called at any time, also
// while ops run: it only changes speed, never results.
func SetThreads(n int) { setting.Store(int64(max(n, 0))) }

// Threads returns the goroutines the parallel ops may use: the SetThreads
// value, by default runtime.GOMAXPROCS(0).
func Threads() int {
	if n := setting.Load(); n > 0 {
		return int(n)
	}
	return runtime.GOMAXPROCS(0)
}

// MinWork is the fewest elementwise operations (a few nanoseconds each:
// a fake quantization, a clamp, a scaled copy) worth a goroutine of their
// own: waking an idle core costs tens of microseconds on a VM.
const MinWork = 1 << 15

// Workers returns the goroutines to split a loop over n items of work
// operations each into: at most Threads(), n, and one per minWork
// operations.
func Workers(n, work, minWork int) int {
	return max(1, min(Threads(), n, n*work/minWork))
}

// For runs f on [0, n) cut into workers contiguous ranges of equal size
// (the last shorter), range i on a goroutine of its own (the last on the
// calling one), and waits. f(i, lo, hi) may use scratch indexed by i.
func For(n, workers int, f func(i, lo, hi int)) {
	per := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for i, lo := 0, 0; lo < n; i, lo = i+1, lo+per {
		hi := min(lo+per, n)
		if hi == n {
			f(i, lo, hi)
			break
		}
		wg.Go(func() { f(i, lo, hi) })
	}
	wg.Wait()
}

// Range runs f on [0, n) cut into Workers(n, work, MinWork) contiguous
// ranges, for a loop over n items of work elementwise operations each.
func Range(n, work int, f func(lo, hi int)) {
	For(n, Workers(n, work, MinWork), func(_, lo, hi int) { f(lo, hi) })
}
