//go:build amd64 && !noasm

package dwconv

// impls returns the reference and the assembly kernels this CPU runs.
func impls() []impl {
	ims := []impl{{"go", rowGo}}
	if hasAVX2 {
		ims = append(ims, impl{"avx2", func(acc, x, w []int32, off []int, c, ow, colStep int) {
			if c >= 8 {
				rowAVX2(&acc[0], &x[0], &w[0], &off[0], len(off), c, ow, colStep)
			}
			rowGoChannels(acc, x, w, off, c, c&^7, ow, colStep)
		}})
	}
	if hasAVX512 {
		ims = append(ims, impl{"avx512", func(acc, x, w []int32, off []int, c, ow, colStep int) {
			rowAVX512(&acc[0], &x[0], &w[0], &off[0], len(off), c, ow, colStep)
		}})
	}
	return ims
}
