package main

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"qat/internal/cpufeat"
	"qat/internal/gemm"
	"qat/internal/qgemm"
)

func newBenchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "benchmarks of qat's kernels",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return usagef("bench needs a subcommand: gemm")
		},
	}
	c.AddCommand(newBenchGemmCmd())
	return c
}

func newBenchGemmCmd() *cobra.Command {
	var shapes string
	var threads int
	var asJSON bool
	var minTime time.Duration
	c := &cobra.Command{
		Use:   "gemm",
		Short: "int8 GEMM (u8 x s8 -> s32) GOPS next to float32 GFLOP/s",
		Long: `Time C = A B for each shape MxKxN: A uint8 [M, K] times B int8 [K, N] into
int32 with the int8 runtime's kernel (B packed once, as weights are), and
the same product in float32 with the trainer's sgemm. Prints the best of
several timed runs as GOPS = 2*M*K*N / seconds / 1e9 for both.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if threads < 1 {
				return usagef("--threads %d: want at least 1", threads)
			}
			list, err := parseShapes(shapes)
			if err != nil {
				return usageError{err}
			}
			if !asJSON {
				fmt.Fprintf(c.OutOrStdout(), "cpu: %s; features: %s; kernels: int8 %s, float32 %s\n",
					cpuModel(), cpufeat.String(), qgemm.Selected(), gemm.Kernel())
			}
			for _, s := range list {
				r := benchGemm(s, threads, minTime)
				if asJSON {
					if err := printJSON(c.OutOrStdout(), r); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(c.OutOrStdout(), "%dx%dx%d threads %d: int8 %.1f GOPS (%s), float32 %.1f GFLOP/s, ratio %.2fx\n",
					s[0], s[1], s[2], threads, r.Int8GOPS, r.Kernel, r.Float32GFLOPS, r.Ratio)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&shapes, "shapes", "128x784x256,1024x1024x1024,256x256x256,64x512x128", "comma-separated MxKxN shapes")
	f.IntVar(&threads, "threads", runtime.GOMAXPROCS(0), "goroutines splitting the rows of A; the default is the number of cores")
	f.BoolVar(&asJSON, "json", false, "print one JSON line per shape")
	f.DurationVar(&minTime, "time", 200*time.Millisecond, "time spent per timed run")
	return c
}

func parseShapes(s string) ([][3]int, error) {
	var out [][3]int
	for _, f := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(f), "x")
		if len(parts) != 3 {
			return nil, fmt.Errorf("--shapes: %q is not MxKxN", f)
		}
		var d [3]int
		for i, p := range parts {
			v, err := strconv.Atoi(p)
			if err != nil || v < 1 || v > 1<<14 {
				return nil, fmt.Errorf("--shapes: %q: dimension %q is not an integer in [1, 16384]", f, p)
			}
			d[i] = v
		}
		if d[1] > 65792 {
			return nil, fmt.Errorf("--shapes: %q: K above 65792 overflows int32 accumulation", f)
		}
		out = append(out, d)
	}
	return out, nil
}

type gemmResult struct {
	M             int     `json:"m"`
	K             int     `json:"k"`
	N             int     `json:"n"`
	Threads       int     `json:"threads"`
	Kernel        string  `json:"kernel"`
	FloatKernel   string  `json:"float_kernel"`
	Features      string  `json:"features"`
	Int8Seconds   float64 `json:"int8_seconds"`
	Int8GOPS      float64 `json:"int8_gops"`
	Float32GFLOPS float64 `json:"float32_gflops"`
	Ratio         float64 `json:"int8_over_float32"`
}

func benchGemm(s [3]int, threads int, minTime time.Duration) gemmResult {
	m, k, n := s[0], s[1], s[2]
	rng := rand.New(rand.NewPCG(1, 2))
	a := make([]uint8, m*k)
	for i := range a {
		a[i] = uint8(rng.IntN(256))
	}
	w := make([]int8, n*k) // [N, K]: B transposed, as weights are stored
	for i := range w {
		w[i] = int8(rng.IntN(256) - 128)
	}
	p, err := qgemm.Pack(w, n, k, 8)
	if err != nil {
		panic(err) // sizes were checked
	}
	c := make([]int32, m*n)
	int8s := bestTime(minTime, func() { qgemm.GemmParallel(c, n, a, k, m, p, threads) })

	af, bf, cf := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
	for i, v := range a {
		af[i] = float32(v)
	}
	for i, v := range w {
		bf[i] = float32(v) // [N, K] read transposed
	}
	f32s := bestTime(minTime, func() {
		parallelRows(m, threads, func(lo, hi int) {
			gemm.Sgemm(cf[lo*n:], n, false, true, hi-lo, n, k, 1, af[lo*k:], k, bf, k, 0)
		})
	})
	ops := 2 * float64(m) * float64(k) * float64(n)
	r := gemmResult{M: m, K: k, N: n, Threads: threads, Kernel: qgemm.Selected().String(),
		FloatKernel: gemm.Kernel(), Features: cpufeat.String(), Int8Seconds: int8s,
		Int8GOPS: ops / int8s / 1e9, Float32GFLOPS: ops / f32s / 1e9}
	r.Ratio = r.Int8GOPS / r.Float32GFLOPS
	return r
}

// bestTime returns the best per-call time of f over 5 runs of at least
// minTime each, after a warm-up call.
func bestTime(minTime time.Duration, f func()) float64 {
	f()
	best := 0.0
	for range 5 {
		reps := 0
		start := time.Now()
		for reps == 0 || time.Since(start) < minTime {
			f()
			reps++
		}
		t := time.Since(start).Seconds() / float64(reps)
		if best == 0 || t < best {
			best = t
		}
	}
	return best
}

// parallelRows runs f over [0, m) split into threads row ranges.
func parallelRows(m, threads int, f func(lo, hi int)) {
	if threads <= 1 {
		f(0, m)
		return
	}
	var wg sync.WaitGroup
	step := (m + threads - 1) / threads
	for lo := 0; lo < m; lo += step {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			f(lo, hi)
		}(lo, min(lo+step, m))
	}
	wg.Wait()
}
