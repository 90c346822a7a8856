//go:build amd64 && !noasm

package vadd

// impls returns the reference and the kernels this CPU runs.
func impls() []impl {
	ims := []impl{{"go", rowsGo}, {"Rows", Rows}}
	if hasAVX2 {
		ims = append(ims, impl{"avx2", func(dst []float32, ds int, src []float32, ss, rows, n int) {
			rowsAVX2(&dst[0], ds, &src[0], ss, rows, n)
		}})
	}
	if hasAVX512 {
		ims = append(ims, impl{"avx512", func(dst []float32, ds int, src []float32, ss, rows, n int) {
			rowsAVX512(&dst[0], ds, &src[0], ss, rows, n)
		}})
	}
	return ims
}
