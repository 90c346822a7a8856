package main

import (
	"bytes"
	"os"
	"strconv"
)

// rssMB returns the resident set size of this process in MiB from
// /proc/self/statm, or 0 where that file does not exist (not Linux).
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return float64(pages*int64(os.Getpagesize())) / (1 << 20)
}
