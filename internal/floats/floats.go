package floats

import "math"

// Finite reports whether x is neither NaN nor ±Inf. Converting a float32
// to float64 is exact and keeps NaN and ±Inf, so the answer is the same for
// either type.
func Finite[F ~float32 | ~float64](x F) bool {
	return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0)
}
