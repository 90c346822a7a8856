package infer_test

import (
	"fmt"

	"qat/infer"
	"qat/model"
	"qat/qmodel"
)

// A frozen model built in code and run on one input: a [1, 1, 2] input,
// flattened, then a linear layer 2 -> 2 with 8-bit weights [[1, 2], [-3,
// 0]] at scale 0.25 and bias [0, 10] at scale 0.5*0.25. For x = (1, -2.5)
// the input codes are 128 + x/0.5 = (130, 123), the accumulators plus bias
// 2*1 - 5*2 = -8 and 2*-3 + 10 = 4, and with the multiplier
// 0.5*0.25/0.125 = 1 the output codes 100 + (-8, 4): the real outputs -1
// and 0.5, as the float layer computes them.
func Example() {
	in := qmodel.Quant{Scale: 0.5, ZeroPoint: 128, QMin: 0, QMax: 255}
	m := &qmodel.Model{
		Name: "tiny", Input: [3]int{1, 1, 2}, Classes: 2,
		Norm: model.Norm{Mean: 0, Std: 1}, InputQuant: in, Requant: qmodel.RequantFloat,
		Ops: []qmodel.Op{
			{Type: model.OpFlatten, Name: "flat", Output: in},
			{Type: model.OpLinear, Name: "fc", In: 2, Out: 2, WeightBits: 8,
				Weight: []int8{1, 2, -3, 0}, WeightScale: []float32{0.25, 0.25},
				Bias: []int32{0, 10}, Multiplier: []float32{1, 1},
				Output:   qmodel.Quant{Scale: 0.125, ZeroPoint: 100, QMin: 0, QMax: 255},
				ClampMin: 0, ClampMax: 255},
		},
	}
	net, err := infer.New(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	r := net.NewRunner(1)
	batch := r.Quantize([]float32{1, -2.5}) // normalised input, NCHW
	codes := r.Run(batch)
	y := make([]float32, len(codes))
	net.Dequantize(y, codes)
	class := make([]int, batch)
	net.Argmax(class, codes)
	fmt.Println("codes", codes, "real", y, "class", class[0])
	// Output:
	// codes [92 104] real [-1 0.5] class 1
}
