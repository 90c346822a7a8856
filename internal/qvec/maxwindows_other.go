//go:build !amd64 || noasm

package qvec

// No MaxWindows or MaxWindowsInt32 assembly but on amd64.
func maxWindows(dst, src []uint8, c, k, step int) { maxWindowsGo(dst, src, c, k, step) }

func maxWindowsInt32(dst, src []int32, c, k, step int) { maxWindowsInt32Go(dst, src, c, k, step) }
