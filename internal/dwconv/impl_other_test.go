//go:build !amd64 || noasm

package dwconv

// impls returns the reference, the only implementation of this build.
func impls() []impl { return []impl{{"go", rowGo}} }
