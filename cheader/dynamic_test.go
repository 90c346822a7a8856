package cheader

import (
	"bytes"
	"strings"
	"testing"

	"qat/model"
	"qat/qmodel"
)

// The header holds integer chains only: a model with a dynamic_linear
// (format qat-int8/4) is refused, and nothing is written.
func TestWriteRefusesDynamic(t *testing.T) {
	m := &qmodel.Model{Name: "dyn", Input: [3]int{1, 1, 2}, Classes: 2, FloatInput: true, Requant: qmodel.RequantFloat,
		Ops: []qmodel.Op{
			{Type: model.OpFlatten, Name: "flat"},
			{Type: qmodel.OpDynamicLinear, Name: "fc", In: 2, Out: 2, Weight: []int8{1, -1, 2, 3},
				WeightScale: []float32{0.1, 0.2}, FloatBias: []float32{0, 1}},
		}}
	var b bytes.Buffer
	err := Write(&b, m, "")
	if err == nil || !strings.Contains(err.Error(), `has dynamically quantized ops (format "qat-int8/4")`) || b.Len() != 0 {
		t.Errorf("Write: %v, %d bytes written", err, b.Len())
	}
}
