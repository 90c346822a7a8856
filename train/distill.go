package train

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"qat/layers"
	"qat/model"
	"qat/ops"
	"qat/safetensors"
)

// Distillation defaults (DistillConfig's zero values).
const (
	// DefaultTemperature is the temperature T of a DistillConfig that
	// sets none.
	DefaultTemperature = 4
	// DefaultAlpha is the weight of the distillation term of a
	// DistillConfig that sets none.
	DefaultAlpha = 0.5
)

// DistillConfig configures knowledge distillation (Hinton et al. 2015)
// from a float teacher model (SetTeacher): the loss of every training
// step is
//
//	(1-Alpha) * CE(student, labels) + Alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T))
//
// (ops.NewDistillation), the teacher's logits computed in eval mode on
// the step's batch. Zero values mean the documented defaults.
type DistillConfig struct {
	// Teacher and TeacherDigest are the path and the content SHA-256
	// (safetensors.File.Digest) of the teacher's checkpoint, which
	// SetTeacher records: a resumed run reloads the teacher from Teacher
	// and refuses a checkpoint of another digest.
	Teacher       string `json:"teacher"`
	TeacherDigest string `json:"teacher_digest"`
	// Temperature is T, above 0; 0 means DefaultTemperature.
	Temperature float64 `json:"temperature"`
	// Alpha is the weight of the distillation term, in [0, 1]; nil means
	// DefaultAlpha. 0 trains on the labels alone and still reports the
	// distillation term (StepRecord.LossKD): the run is the plain run
	// bit for bit.
	Alpha *float64 `json:"alpha,omitempty"`
}

// withDefaults returns a copy of d with its defaults filled in.
func (d DistillConfig) withDefaults() *DistillConfig {
	if d.Temperature == 0 {
		d.Temperature = DefaultTemperature
	}
	if d.Alpha == nil {
		a := DefaultAlpha
		d.Alpha = &a
	} else {
		a := *d.Alpha
		d.Alpha = &a
	}
	return &d
}

// loss returns the ops configuration of d, whose defaults are filled in.
func (d *DistillConfig) loss() ops.Distill {
	return ops.Distill{Temperature: d.Temperature, Alpha: *d.Alpha}
}

// Validate checks the temperature and the weight (after defaults).
func (d DistillConfig) Validate() error {
	return d.withDefaults().loss().Validate()
}

// Teacher is a float model whose soft targets a distilling run learns
// from, with the input normalisation it was trained with and the
// identity of its checkpoint.
type Teacher struct {
	Model *layers.Model
	Norm  model.Norm
	// Path and Digest are the checkpoint's path and content SHA-256
	// (safetensors.File.Digest); Warnings what loading it noticed
	// (Checkpoint.Warnings).
	Path, Digest string
	Warnings     []string
}

// LoadTeacher loads the float checkpoint at path as a teacher. A
// quantized checkpoint is an error: the soft targets are the float
// model's.
func LoadTeacher(path string) (*Teacher, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("teacher %s: %w", path, err)
	}
	c, err := FromFile(f)
	if err != nil {
		return nil, fmt.Errorf("teacher %s: %w", path, err)
	}
	if c.Model.Quantized() {
		return nil, fmt.Errorf("teacher %s is quantized (%v): distil from a float checkpoint", path, c.Model.Quant)
	}
	return &Teacher{Model: c.Model, Norm: c.Norm, Path: path, Digest: f.Digest(), Warnings: c.Warnings}, nil
}

// teacherRun is a Trainer's teacher with its graphs.
type teacherRun struct {
	*Teacher
	gs *graphs
}

// SetTeacher sets the teacher of a run whose config distils
// (Config.Distill). The teacher must be a float model that takes the
// student's input shape and has its class count; its architecture may
// differ. A fresh run records the teacher's Path and Digest in its
// config, and so in every checkpoint; a resumed run, whose config holds
// a digest, must be given a checkpoint of that digest (at the recorded
// path or another, which is then recorded).
func (t *Trainer) SetTeacher(tc *Teacher) error {
	d := t.cfg.Distill
	if d == nil {
		return errors.New("set teacher: the run does not distil (its config has no distillation)")
	}
	s, ts := t.Model.Spec, tc.Model.Spec
	switch {
	case tc.Model.Quantized():
		return fmt.Errorf("teacher %s is quantized (%v): distil from a float model", tc.Path, tc.Model.Quant)
	case !slices.Equal(ts.Input, s.Input) || ts.Classes != s.Classes:
		return fmt.Errorf("teacher %s (%s) takes %v inputs with %d classes, student %s %v with %d: they must match",
			tc.Path, ts.Name, ts.Input, ts.Classes, s.Name, s.Input, s.Classes)
	case d.TeacherDigest != "" && d.TeacherDigest != tc.Digest:
		return fmt.Errorf("teacher %s is not the run's teacher: its content digest %s is not the recorded %s (of %s)",
			tc.Path, tc.Digest, d.TeacherDigest, d.Teacher)
	}
	d.Teacher, d.TeacherDigest = tc.Path, tc.Digest
	t.teacher = &teacherRun{Teacher: tc, gs: newGraphs(tc.Model)}
	return nil
}

// teach runs the teacher in eval mode (BN on running statistics) on
// batch i (the samples idx, augmented as the student's, with the
// teacher's normalisation) and hands its logits to the student's
// training graph gr. The labels buffer y is refilled with the same
// labels.
func (t *Trainer) teach(r *fitRun, gr *layers.Graph, i int, idx, y []int) error {
	cfg := t.cfg
	tg, err := t.teacher.gs.get(layers.Eval, len(idx))
	if err != nil {
		return fmt.Errorf("teacher: %w", err)
	}
	r.trainSet.FillAugmented(tg.Input(), y, idx, t.teacher.Norm, cfg.Augment, cfg.Seed, t.Epoch)
	if err := tg.Run(y); err != nil {
		return fmt.Errorf("step %d: teacher: %w", t.Step+1, err)
	}
	logits := tg.Logits()
	for _, v := range logits {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("step %d (epoch %d, batch %d): teacher %s: logits are not finite: first non-finite value in %s: %w",
				t.Step+1, t.Epoch+1, i, t.teacher.Path, tg.NonFinite(), ErrNonFinite)
		}
	}
	gr.SetTeacher(logits)
	return nil
}
