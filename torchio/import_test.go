package torchio

import (
	"encoding/binary"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"qat/layers"
	"qat/model"
)

// readF32 reads a file of little-endian float32 values.
func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// fixture returns the graph of testdata/NAME.json and the state_dict of
// testdata/NAME.pt.
func fixture(t *testing.T, name string) (model.Graph, StateDict) {
	t.Helper()
	g, err := model.Load("testdata/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	sd, err := ReadStateDict("testdata/" + name + ".pt")
	if err != nil {
		t.Fatal(err)
	}
	return g, sd
}

func tinyModel(t *testing.T) (model.Graph, StateDict) { return fixture(t, "tiny") }

// The imported models compute PyTorch's logits: testdata/NAME-logits.f32
// holds those of the model in eval mode on testdata/NAME-inputs.f32
// (both [4, ...] float32, written by scripts/torch-fixtures.py). tiny is
// a chain; resnet a DAG of torchvision's BasicBlocks and a depthwise conv.
func TestImportLogits(t *testing.T) {
	for _, name := range []string{"tiny", "resnet"} {
		t.Run(name, func(t *testing.T) {
			g, sd := fixture(t, name)
			m, err := Import(g, sd)
			if err != nil {
				t.Fatal(err)
			}
			x, want := readF32(t, "testdata/"+name+"-inputs.f32"), readF32(t, "testdata/"+name+"-logits.f32")
			gr, err := m.NewGraph(4, layers.Eval)
			if err != nil {
				t.Fatal(err)
			}
			copy(gr.Input(), x)
			if err := gr.Run(make([]int, 4)); err != nil {
				t.Fatal(err)
			}
			got := gr.Logits()
			var peak, worst float64
			for i := range want {
				peak = max(peak, math.Abs(float64(want[i])))
				worst = max(worst, math.Abs(float64(got[i]-want[i])))
			}
			if len(got) != len(want) || worst > 1e-5*peak {
				t.Errorf("logits differ from PyTorch's by up to %g (max |logit| %g):\n got %v\nwant %v", worst, peak, got, want)
			}
		})
	}
}

// The BatchNorm statistics are the state_dict's (scripts/torch-fixtures.py
// sets num_batches_tracked to 7).
func TestImportBN(t *testing.T) {
	g, sd := tinyModel(t)
	m, err := Import(g, sd)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"features.1", "features.5"} {
		bn := m.BatchNorm(name)
		if bn == nil || bn.NumBatchesTracked != 7 || !slices.Equal(bn.RunningMean, sd[name+".running_mean"].Float) ||
			!slices.Equal(bn.RunningVar, sd[name+".running_var"].Float) {
			t.Errorf("BN %s = %+v, want the state_dict's statistics", name, bn)
		}
	}
}

// Every problem is reported, sorted by tensor name.
func TestImportMismatch(t *testing.T) {
	g, sd := tinyModel(t)
	delete(sd, "features.0.bias")
	delete(sd, "classifier.weight")
	sd["features.4.bias"] = Tensor{Shape: []int{6}, DType: "float32", Float: make([]float32, 6)}
	sd["features.1.weight"] = Tensor{Shape: []int{5}, DType: "float32", Float: make([]float32, 5)}
	sd["features.1.num_batches_tracked"] = Tensor{Shape: []int{}, DType: "float32", Float: []float32{7}}
	sd["features.5.num_batches_tracked"] = Tensor{Shape: []int{1}, DType: "int64", Int: []int64{7}}
	sd["features.1.running_var"].Float[2] = -1
	sd["features.5.bias"].Float[1] = float32(math.NaN())
	sd["features.5.weight"] = Tensor{Shape: []int{6}, DType: "int64", Int: make([]int64, 6)}
	_, err := Import(g, sd)
	want := "state_dict does not fit model tiny (9 problems): " +
		"classifier.weight [5 24] is missing; " +
		"features.0.bias [4] is missing; " +
		"features.1.num_batches_tracked is float32, not an int64 counter; " +
		"features.1.running_var element 2 is negative (-1): a variance; " +
		"features.1.weight has shape [5], the model's is [4]; " +
		"features.4.bias [6] is not a tensor of the model; " +
		"features.5.bias element 1 is NaN; " +
		"features.5.num_batches_tracked has shape [1], the model's is []; " +
		"features.5.weight is int64, not a floating-point tensor"
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
}

// An empty state_dict for a large model lists maxProblems tensors.
func TestImportProblemCap(t *testing.T) {
	g, err := model.Builtin("resnet20")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Import(g, StateDict{})
	if err == nil || !strings.Contains(err.Error(), "(128 problems): bn1.bias [16] is missing; ") || !strings.HasSuffix(err.Error(), "; and 108 more") ||
		strings.Count(err.Error(), ";") != maxProblems {
		t.Errorf("error %v", err)
	}
}

func TestImportBadGraph(t *testing.T) {
	_, sd := tinyModel(t)
	if _, err := Import(model.Graph{Name: "none"}, sd); err == nil || !strings.Contains(err.Error(), "model none: input shape []: want [C, H, W]") {
		t.Errorf("error %v", err)
	}
}

func TestRetarget(t *testing.T) {
	g, sd := tinyModel(t)
	g10, err := g.Resized(g.Input, 10)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Retarget(g10, sd, nil)
	if err != nil || r.Classes != 5 || r.Nodes[len(r.Nodes)-1].Out != 5 || !slices.Equal(r.Input, g.Input) {
		t.Fatalf("Retarget = %+v, %v: want 5 classes on %v", r, err, g.Input)
	}
	if _, err := Import(r, sd); err != nil {
		t.Error(err)
	}
	if r, err := Retarget(g, sd, nil); err != nil || !slices.Equal(r.Input, g.Input) || r.Classes != 5 {
		t.Errorf("Retarget to itself = %+v, %v", r, err)
	}
	// On 3x10x10 inputs the classifier reads 6x3x3 features.
	r, err = Retarget(g, sd, []int{3, 10, 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Import(r, sd); err == nil || !strings.Contains(err.Error(), "classifier.weight has shape [5 24], the model's is [5 54]") {
		t.Errorf("Import on 3x10x10: error %v", err)
	}
	if _, err := Retarget(g, sd, []int{3, 1, 1}); err == nil || !strings.Contains(err.Error(), "node 1 (maxpool): kernel 2 larger than the input") {
		t.Errorf("Retarget to 3x1x1: error %v", err)
	}
}
