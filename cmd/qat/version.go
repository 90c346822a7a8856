package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"qat/internal/cpufeat"
	"qat/internal/gemm"
	"qat/internal/qgemm"
)

// buildInfo describes this binary and machine: what "qat version" prints
// and what benchmark reports record next to their figures.
type buildInfo struct {
	Version     string `json:"version"`
	Go          string `json:"go"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	CPU         string `json:"cpu"`
	Features    string `json:"features"`
	FloatKernel string `json:"float_kernel"`
	Int8Kernel  string `json:"int8_kernel"`
	Threads     int    `json:"threads"`
}

func currentBuild() buildInfo {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
	}
	return buildInfo{Version: v, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		CPU: cpuModel(), Features: cpufeat.String(), FloatKernel: gemm.Kernel(), Int8Kernel: qgemm.Selected().String(),
		Threads: runtime.GOMAXPROCS(0)}
}

// cpuModel returns the CPU's model name from /proc/cpuinfo ("model name"
// on x86, "CPU part" and "CPU implementer" on arm64), or "unknown".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	var impl, part string
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			return strings.TrimSpace(v)
		case "CPU implementer":
			impl = strings.TrimSpace(v)
		case "CPU part":
			part = strings.TrimSpace(v)
		}
	}
	if impl != "" {
		return "implementer " + impl + " part " + part
	}
	return "unknown"
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version",
		Short: "print qat's version, the CPU features found and the kernels chosen",
		Long: `Print the build (version, Go), the CPU, the instruction sets the kernels may
use (after QAT_CPU, which switches features off: QAT_CPU=avx512 runs the AVX2
kernels on an AVX-512 machine, the int8 one AVX-VNNI where the CPU has it,
QAT_CPU=avx512,vnni the AVX2 int8 one, QAT_CPU=asm the pure-Go references),
and the float32 and int8 GEMM kernels this machine runs.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			b := currentBuild()
			if asJSON {
				return printJSON(c.OutOrStdout(), b)
			}
			_, err := fmt.Fprintf(c.OutOrStdout(), "qat %s, %s %s/%s\ncpu: %s\nfeatures: %s\nkernels: float32 %s, int8 %s\nthreads: %d\n",
				b.Version, b.Go, b.OS, b.Arch, b.CPU, b.Features, b.FloatKernel, b.Int8Kernel, b.Threads)
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}
