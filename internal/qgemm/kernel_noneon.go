//go:build !arm64 || noasm

package qgemm

// No NEON kernels off arm64 or with the noasm tag.
const (
	hasNEON    = false
	hasNEONDot = false
)
