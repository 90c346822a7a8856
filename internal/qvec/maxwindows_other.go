//go:build !amd64 || noasm

package qvec

// No MaxWindows assembly but on amd64.
func maxWindows(dst, src []uint8, c, k, step int) { maxWindowsGo(dst, src, c, k, step) }
