package layers

import "qat/internal/par"

// SetThreads sets how many goroutines the ops of every graph may use (see
// Threads in the package docs of ops and layers); n < 1 restores the
// default, GOMAXPROCS. It may be called at any time, also while graphs
// run: it only changes speed, never results. It is par.SetThreads, shared
// with packages ops and fakequant.
func SetThreads(n int) { par.SetThreads(n) }

// Threads returns the goroutines the ops may use: the SetThreads value, by
// default runtime.GOMAXPROCS(0).
func Threads() int { return par.Threads() }
