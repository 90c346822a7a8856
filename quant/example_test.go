package quant_test

import (
	"fmt"

	"qat/quant"
)

// Per-tensor int8 codes with scale 0.5: x*2 is rounded half to even (0.25
// and -0.25 give 0, 0.75 and 1.25 give 2, -0.75 gives -2), and codes
// saturate at the ends of the range.
func ExampleQuantize() {
	p := quant.Params{Scale: []float32{0.5}, ZeroPoint: []int32{0}, QMin: -128, QMax: 127, Axis: -1}
	x := []float32{0.25, 0.75, 1.25, -0.25, -0.75, 100, -100}
	q := make([]int32, len(x))
	quant.Quantize(q, x, nil, p)
	back := make([]float32, len(q))
	quant.Dequantize(back, q, nil, p)
	fmt.Println(q)
	fmt.Println(back)
	// Output:
	// [0 2 2 0 -2 127 -128]
	// [0 1 1 0 -1 63.5 -64]
}

// Per-channel weights: a MinMax observer of the default weight scheme
// (int8, symmetric, narrow range, axis 0) gives each output channel (row)
// the scale that maps its largest magnitude to 127.
func ExampleQuantize_perChannel() {
	w := []float32{
		63.5, -1, 0.25, // channel 0: |max| 63.5, scale 0.5
		-31.75, 0.375, 1, // channel 1: |max| 31.75, scale 0.25
	}
	shape := []int{2, 3}
	obs := quant.NewMinMax(quant.Int8SymmetricPerChannel)
	if err := obs.Observe(w, shape); err != nil {
		fmt.Println(err)
		return
	}
	p, err := obs.Params()
	if err != nil {
		fmt.Println(err)
		return
	}
	q := make([]int32, len(w))
	quant.Quantize(q, w, shape, p)
	fmt.Println("scales", p.Scale, "zero points", p.ZeroPoint, "range", p.QMin, p.QMax)
	fmt.Println("codes", q)
	// Output:
	// scales [0.5 0.25] zero points [0 0] range -127 127
	// codes [127 -2 0 -127 2 4]
}

// Parameters from an observed range, as PyTorch's observers choose them:
// uint8 affine over [-1, 3] (the range always includes 0).
func ExampleParamsFromRange() {
	p := quant.ParamsFromRange(quant.Uint8Affine, -1, 3)
	q := make([]int32, 4)
	quant.Quantize(q, []float32{-1, 0, 1, 3}, nil, p)
	fmt.Printf("scale %.6f zero point %d codes %v\n", p.Scale[0], p.ZeroPoint[0], q)
	// Output:
	// scale 0.015686 zero point 64 codes [0 64 128 255]
}
