package layers

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// threadSetting is SetThreads's value; 0 means GOMAXPROCS.
var threadSetting atomic.Int64

// SetThreads sets how many goroutines the conv and linear ops of every
// graph may use (see the package doc, Threads); n < 1 restores the
// default, GOMAXPROCS. It may be called at any time, also while graphs
// run: it only changes speed, never results.
func SetThreads(n int) { threadSetting.Store(int64(max(n, 0))) }

// Threads returns the goroutines the conv and linear ops may use: the
// SetThreads value, by default runtime.GOMAXPROCS(0).
func Threads() int {
	if n := threadSetting.Load(); n > 0 {
		return int(n)
	}
	return runtime.GOMAXPROCS(0)
}

// minSampleWork is the fewest multiply-adds worth a goroutine of their
// own in a loop over samples: waking an idle core costs tens of
// microseconds on a VM (as for gemm.SgemmParallel).
const minSampleWork = 1 << 20

// sampleWorkers returns the goroutines to split a loop over n samples of
// work multiply-adds each into: at most Threads(), n, and one per
// minSampleWork multiply-adds.
func sampleWorkers(n, work int) int {
	return max(1, min(Threads(), n, n*work/minSampleWork))
}

// forSamples runs f on [0, n) (samples, or blocks of columns) cut into
// workers contiguous ranges, range i on a goroutine of its own (the last
// on the calling one), and waits. f(i, lo, hi) may use scratch indexed by
// i.
func forSamples(n, workers int, f func(i, lo, hi int)) {
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
