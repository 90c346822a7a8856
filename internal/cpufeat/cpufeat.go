// Package cpufeat is the one place where qat's kernels learn which
// instruction sets they may use: the CPU's features as
// golang.org/x/sys/cpu reports them (which also checks that the OS saves
// the vector registers), minus those switched off by the environment
// variable QAT_CPU.
//
// # QAT_CPU
//
// QAT_CPU is read once, when the program starts. It is a comma-separated
// list of features to switch off:
//
//	avx512   AVX-512 (F, BW, VL, VNNI): the zmm kernels
//	vnni     AVX-512 VNNI and AVX-VNNI only (VPDPBUSD)
//	avx2     AVX2 and FMA, and with them everything above
//	asimddp  arm64's dot-product instructions (SDOT, UDOT)
//	asimd    arm64's NEON kernels, and with them asimddp
//	asm      every assembly kernel: the pure-Go references only
//
// so that QAT_CPU=avx512 runs the AVX2 kernels on an AVX-512 machine (and
// the AVX-VNNI int8 GEMM where the CPU has AVX-VNNI, QAT_CPU=avx512,vnni
// the AVX2 one) and QAT_CPU=asm runs the references anywhere, as CI does.
// A feature the CPU lacks stays off; an unknown name is a programming
// error of whoever set the variable, and the program panics at start
// naming it rather than silently testing the wrong kernels.
//
// The variables below are set before any package that imports cpufeat
// initialises and are never modified afterwards.
package cpufeat

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/cpu"
)

// Env is the name of the environment variable that switches features off.
const Env = "QAT_CPU"

// X86 holds the x86-64 features the kernels may use (all false on other
// architectures).
var X86 struct {
	AVX2       bool // AVX2 and FMA
	AVX512     bool // AVX-512 F, BW, VL
	AVX512VNNI bool // AVX512 plus VNNI
	AVXVNNI    bool // VEX-encoded VPDPBUSD on ymm (AVX2 plus AVX-VNNI)
}

// ARM64 holds the arm64 features the kernels may use (all false on other
// architectures).
var ARM64 struct {
	ASIMD   bool // NEON
	ASIMDDP bool // NEON plus SDOT/UDOT
}

// Disabled lists the names of QAT_CPU, in the order of the list above,
// without duplicates.
var Disabled []string

func init() {
	off, err := parse(os.Getenv(Env))
	if err != nil {
		panic(err)
	}
	for _, name := range known {
		if off[name] {
			Disabled = append(Disabled, name)
		}
	}
	set(off)
}

var known = []string{"avx512", "vnni", "avx2", "asimddp", "asimd", "asm"}

// parse returns the set of names of a QAT_CPU value.
func parse(v string) (map[string]bool, error) {
	off := map[string]bool{}
	for _, f := range strings.Split(v, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		ok := false
		for _, k := range known {
			ok = ok || f == k
		}
		if !ok {
			return nil, fmt.Errorf("cpufeat: %s=%q: unknown feature %q (known: %s)", Env, v, f, strings.Join(known, ", "))
		}
		off[f] = true
	}
	return off, nil
}

// set computes X86 and ARM64 from the CPU and the switched-off names.
func set(off map[string]bool) {
	asm := !off["asm"]
	x := cpu.X86
	X86.AVX2 = asm && !off["avx2"] && runtime.GOARCH == "amd64" && x.HasAVX2 && x.HasFMA
	X86.AVX512 = X86.AVX2 && !off["avx512"] && x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL
	X86.AVX512VNNI = X86.AVX512 && !off["vnni"] && x.HasAVX512VNNI
	X86.AVXVNNI = X86.AVX2 && !off["vnni"] && x.HasAVXVNNI
	a := cpu.ARM64
	ARM64.ASIMD = asm && !off["asimd"] && runtime.GOARCH == "arm64" && a.HasASIMD
	ARM64.ASIMDDP = ARM64.ASIMD && !off["asimddp"] && a.HasASIMDDP
}

// String describes the features in use and those switched off, for
// "qat version" and benchmark headers: "amd64 avx2 fma (QAT_CPU=avx512)".
func String() string {
	var f []string
	switch {
	case X86.AVX512VNNI:
		f = append(f, "avx512", "avx512vnni")
	case X86.AVX512:
		f = append(f, "avx512")
	}
	if X86.AVX2 {
		f = append(f, "avx2", "fma")
	}
	if X86.AVXVNNI {
		f = append(f, "avxvnni")
	}
	if ARM64.ASIMD {
		f = append(f, "asimd")
	}
	if ARM64.ASIMDDP {
		f = append(f, "asimddp")
	}
	if len(f) == 0 {
		f = append(f, "generic")
	}
	s := runtime.GOARCH + " " + strings.Join(f, " ")
	if len(Disabled) > 0 {
		s += " (" + Env + "=" + strings.Join(Disabled, ",") + ")"
	}
	return s
}
