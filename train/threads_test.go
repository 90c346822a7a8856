package train

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"qat/layers"
)

// threadRun is what a short lenet run leaves: the float, QAT and
// distilled QAT runs' last records, the checkpoint bytes and the
// fake-quant evaluation's logits.
type threadRun struct {
	float, qat, kd EpochRecord
	checkpoint     []byte
	logits         []float32
}

// runWithThreads trains lenet on the embedded data for a few steps with
// layers.SetThreads(threads), fine-tunes it with QAT, evaluates it in
// fake quant, and fine-tunes the float model at W4A4 again distilling
// from itself. Batches of 50 and 70 split unevenly
// across most thread counts.
func runWithThreads(t *testing.T, threads int) threadRun {
	t.Helper()
	layers.SetThreads(threads)
	defer layers.SetThreads(0)
	tr, te := embedded(t, 200, 140)
	var r threadRun
	tn, err := NewTrainer(newModel(t, "lenet", 2), Config{Batch: 50, Seed: 4, Norm: mnistNorm, EvalBatch: 70})
	if err != nil {
		t.Fatal(err)
	}
	if r.float, err = tn.Fit(context.Background(), tr, te); err != nil {
		t.Fatal(err)
	}
	floatPath := filepath.Join(t.TempDir(), "float.safetensors")
	if err := FromTrainer(tn, "embedded").Save(floatPath); err != nil {
		t.Fatal(err)
	}
	m := tn.Model
	if err := m.Quantize(layers.QuantConfig{}); err != nil {
		t.Fatal(err)
	}
	if tn, err = NewTrainer(m, Config{Batch: 50, Seed: 5, LR: 1e-4, Norm: mnistNorm, EvalBatch: 70}); err != nil {
		t.Fatal(err)
	}
	if r.qat, err = tn.Fit(context.Background(), tr, te); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ck.safetensors")
	if err := FromTrainer(tn, "embedded").Save(path); err != nil {
		t.Fatal(err)
	}
	if r.checkpoint, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	ev, err := Evaluate(m, te, EvalConfig{Batch: 70, Norm: mnistNorm, KeepLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	r.logits = ev.Logits
	tc, err := LoadTeacher(floatPath)
	if err != nil {
		t.Fatal(err)
	}
	if tn, err = NewTrainer(student(t, floatPath, "W4A4"), Config{Batch: 50, Seed: 6, LR: 1e-4, Norm: mnistNorm, EvalBatch: 70,
		Distill: &DistillConfig{}}); err != nil {
		t.Fatal(err)
	}
	if err := tn.SetTeacher(tc); err != nil {
		t.Fatal(err)
	}
	if r.kd, err = tn.Fit(context.Background(), tr, te); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestThreadsAreExact checks that training, QAT fine-tuning, distilled
// QAT fine-tuning, checkpoints and the fake-quant evaluation are bit for
// bit the same with 1, 2, 3 and 7 threads. At batch 50 the first conv layer's activations are split by
// the ops that use internal/par (fake quantization and its observer,
// BatchNorm and the Conv+BN folding ops, ReLU, pooling) as well as by the
// conv and linear ops.
func TestThreadsAreExact(t *testing.T) {
	want := runWithThreads(t, 1)
	for _, threads := range []int{2, 3, 7} {
		got := runWithThreads(t, threads)
		for _, c := range []struct {
			what      string
			got, want EpochRecord
		}{{"float", got.float, want.float}, {"qat", got.qat, want.qat}, {"distilled qat", got.kd, want.kd}} {
			if c.got.TrainLoss != c.want.TrainLoss || *c.got.ValLoss != *c.want.ValLoss || *c.got.ValAccuracy != *c.want.ValAccuracy {
				t.Errorf("threads %d: %s run: train loss %v, test loss %v, accuracy %v; one thread: %v, %v, %v", threads, c.what,
					c.got.TrainLoss, *c.got.ValLoss, *c.got.ValAccuracy, c.want.TrainLoss, *c.want.ValLoss, *c.want.ValAccuracy)
			}
		}
		if *got.kd.TrainLossKD != *want.kd.TrainLossKD {
			t.Errorf("threads %d: distillation term %v, one thread %v", threads, *got.kd.TrainLossKD, *want.kd.TrainLossKD)
		}
		if !bytes.Equal(got.checkpoint, want.checkpoint) {
			t.Errorf("threads %d: the checkpoint differs from one thread's", threads)
		}
		for i := range want.logits {
			if math.Float32bits(got.logits[i]) != math.Float32bits(want.logits[i]) {
				t.Errorf("threads %d: fake-quant logit %d = %v, one thread %v", threads, i, got.logits[i], want.logits[i])
				break
			}
		}
	}
}
