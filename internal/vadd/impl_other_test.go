//go:build !amd64 || noasm

package vadd

// impls returns the reference and Rows, the only implementation here.
func impls() []impl { return []impl{{"go", rowsGo}, {"Rows", Rows}} }
