//go:build !amd64 || noasm

package dwconv

func row(acc, x, w []int32, off []int, c, ow, colStep int) { rowGo(acc, x, w, off, c, ow, colStep) }

func center(dst []int32, src []uint8, z int32) { centerGo(dst, src, z) }
