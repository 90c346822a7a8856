package experiment

import (
	"context"
	"strings"
	"testing"
)

// TestPTQRecoveryRuns checks the quant config's ptq options in experiment
// files: refused for QAT runs, and in a PTQ run applied by ptq.Calibrate,
// qat calibrate's path (the result describes them and holds what they
// did), with the int8
// accuracy equal to the fake-quant accuracy.
func TestPTQRecoveryRuns(t *testing.T) {
	if _, err := Parse([]byte(`{"runs":[{"name":"q","method":"qat","quant":{"weight":{},"act":{},"ptq":{"cle":true}}}]}`)); err == nil ||
		!strings.Contains(err.Error(), "quant.ptq options are for ptq runs") {
		t.Errorf("qat run with ptq options: %v", err)
	}
	c, err := Parse([]byte(`{"name":"ptq","model":"lenet","data":["embedded"],"train_limit":256,"test_limit":200,
		"float":{"epochs":1},"runs":[
		{"name":"all","method":"ptq","calibration_batches":2,
		 "quant":{"weight":{"bits":4},"act":{"bits":8},"ptq":{"cle":true,"bias_correction":true,"adaround":{"iters":20}}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Execute(context.Background(), c, Options{Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0]
	if !strings.HasSuffix(r.Quant, "CLE, bias correction, AdaRound 20 iters") {
		t.Errorf("quant %q does not name the recovery methods", r.Quant)
	}
	if r.PTQ == nil || r.PTQ.CLE == nil || len(r.PTQ.Layers) != 4 || r.PTQ.Layers[3].Codes == 0 {
		t.Errorf("ptq report %+v: want CLE and lenet's 4 layers", r.PTQ)
	}
	if r.Int8Accuracy == nil || *r.Int8Accuracy != r.FakeQuantAccuracy || r.FakeQuantAccuracy < r.FloatAccuracy-0.05 {
		t.Errorf("float %v, fake-quant %v, int8 %v: want the last two equal, within 5 pp of float", r.FloatAccuracy, r.FakeQuantAccuracy, r.Int8Accuracy)
	}
}
