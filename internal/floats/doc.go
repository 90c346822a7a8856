// Package floats holds small helpers on floating-point values shared by
// several packages (plots, qmodel, fakequant), so that each is written and
// tested once: Finite reports whether a float32 or float64 value is neither
// NaN nor ±Inf.
package floats
