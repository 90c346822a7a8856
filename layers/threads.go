package layers

import "qat/internal/par"

// SetThreads sets how many goroutines the ops of every graph may use (see
// the package doc, Threads); n < 1 restores the default, GOMAXPROCS. It
// may be called at any time, also while graphs run: it only changes speed,
// never results. It is par.SetThreads, shared with package fakequant.
func SetThreads(n int) { par.SetThreads(n) }

// Threads returns the goroutines the ops may use: the SetThreads value, by
// default runtime.GOMAXPROCS(0).
func Threads() int { return par.Threads() }

// minSampleWork is the fewest multiply-adds worth a goroutine of their
// own in a loop over samples: waking an idle core costs tens of
// microseconds on a VM (as for gemm.SgemmParallel).
const minSampleWork = 1 << 20

// sampleWorkers returns the goroutines to split a loop over n samples of
// work multiply-adds each into: at most Threads(), n, and one per
// minSampleWork multiply-adds.
func sampleWorkers(n, work int) int { return par.Workers(n, work, minSampleWork) }

// forSamples runs f on [0, n) (samples, or blocks of columns) cut into
// workers contiguous ranges, range i on a goroutine of its own (the last
// on the calling one), and waits (par.For). f(i, lo, hi) may use scratch
// indexed by i.
func forSamples(n, workers int, f func(i, lo, hi int)) { par.For(n, workers, f) }
