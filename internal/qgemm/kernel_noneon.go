//go:build !arm64 || noasm

package qgemm

// No NEON kernels off arm64 or with the noasm tag. (The file name does
// not constrain the build: only a trailing _arm64 would.)
const (
	hasNEON    = false
	hasNEONDot = false
)
