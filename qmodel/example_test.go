package qmodel_test

import (
	"bytes"
	"fmt"
	"reflect"

	"qat/model"
	"qat/qmodel"
)

// tinyModel is a valid two-op model: a [1, 1, 2] input flattened and fed
// to a linear layer 2 -> 2 with 8-bit weights and float requantization.
func tinyModel() *qmodel.Model {
	in := qmodel.Quant{Scale: 0.5, ZeroPoint: 128, QMin: 0, QMax: 255}
	out := qmodel.Quant{Scale: 0.125, ZeroPoint: 100, QMin: 0, QMax: 255}
	return &qmodel.Model{
		Name:       "tiny",
		Input:      [3]int{1, 1, 2},
		Classes:    2,
		Norm:       model.Norm{Mean: 0, Std: 1},
		InputQuant: in,
		Requant:    qmodel.RequantFloat,
		Ops: []qmodel.Op{
			{Type: model.OpFlatten, Name: "flat", Output: in},
			{Type: model.OpLinear, Name: "fc", In: 2, Out: 2, WeightBits: 8,
				Weight:      []int8{1, 2, -3, 0}, // [Out, In]
				WeightScale: []float32{0.25, 0.25},
				Bias:        []int32{0, 10},  // at scale 0.5*0.25
				Multiplier:  []float32{1, 1}, // 0.5*0.25 / 0.125
				Output:      out, ClampMin: 0, ClampMax: 255},
		},
	}
}

// A model built in code, written as a qat-int8/2 file into memory and
// parsed back: Write validates it first, Parse checks the checksum and
// validates again, and the model read equals the one written.
func Example() {
	m := tinyModel()
	var buf bytes.Buffer
	if err := qmodel.Write(&buf, m); err != nil {
		fmt.Println(err)
		return
	}
	back, err := qmodel.Parse(buf.Bytes())
	if err != nil {
		fmt.Println(err)
		return
	}
	shapes, _ := back.Shapes()
	fmt.Println(back.Name, back.Input, "->", shapes)
	fmt.Println("weights", back.Ops[1].Weight, "bias", back.Ops[1].Bias)
	fmt.Println("equal:", reflect.DeepEqual(m, back))
	// Output:
	// tiny [1 1 2] -> [[2] [2]]
	// weights [1 2 -3 0] bias [0 10]
	// equal: true
}
