package train

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"qat/layers"
	"qat/model"
	"qat/safetensors"
)

// Checkpoint metadata keys written by SaveCheckpoint, besides the model's
// (layers.MetaArch and friends).
const (
	MetaFormat    = "qat.format"    // FormatVersion
	MetaStep      = "qat.step"      // optimizer steps done, decimal
	MetaEpoch     = "qat.epoch"     // epochs done, decimal
	MetaNorm      = "qat.norm"      // {"Mean":m,"Std":s}
	MetaDataset   = "qat.dataset"   // name of the training data
	MetaTrain     = "qat.train"     // Config JSON of the run
	MetaOptimizer = "qat.optimizer" // {"steps":n} when optimizer state is saved

	// FormatVersion identifies this checkpoint layout: version 1 sealed
	// with the SHA-256 of its content (safetensors.File.Seal), which must
	// be present and is checked when the file is read.
	FormatVersion = "qat-checkpoint/2"
	// FormatV1 is the previous version, without the digest; it still
	// loads, with a warning in Checkpoint.Warnings.
	FormatV1 = "qat-checkpoint/1"
	// optimizerPrefix prefixes the optimizer state tensors.
	optimizerPrefix = "optimizer."
)

// Checkpoint is a model with what is needed to evaluate it (input
// normalisation) and to resume its training (optimizer state, counters
// and the run's config).
type Checkpoint struct {
	Model   *layers.Model
	Norm    model.Norm
	Dataset string
	Step    int64
	Epoch   int
	// Train is the config of the run that wrote the checkpoint (nil if
	// none was recorded).
	Train *Config
	// OptState and OptSteps are the optimizer's State and Steps (nil
	// state: none saved).
	OptState map[string][]float32
	OptSteps int64
	// Warnings lists what loading noticed without rejecting the file: a
	// FormatV1 checkpoint, whose damage nothing can reveal.
	Warnings []string
}

// FromTrainer captures a trainer's state for saving.
func FromTrainer(t *Trainer, dataset string) *Checkpoint {
	cfg := t.Config()
	return &Checkpoint{Model: t.Model, Norm: cfg.Norm, Dataset: dataset, Step: t.Step, Epoch: t.Epoch,
		Train: &cfg, OptState: t.Opt.State(), OptSteps: t.Opt.Steps()}
}

// File encodes the checkpoint as a safetensors file: model tensors under
// their state_dict names, optimizer buffers under "optimizer.<key>",
// counters, normalisation and configs as metadata, sealed with its digest
// (safetensors.File.Seal) unless the caller changes it afterwards.
func (c *Checkpoint) File() (*safetensors.File, error) {
	f := &safetensors.File{Metadata: map[string]string{}, Tensors: map[string]safetensors.Tensor{}}
	if err := c.Model.SaveState(f); err != nil {
		return nil, err
	}
	f.Metadata[MetaFormat] = FormatVersion
	f.Metadata[MetaStep] = strconv.FormatInt(c.Step, 10)
	f.Metadata[MetaEpoch] = strconv.Itoa(c.Epoch)
	norm, err := json.Marshal(c.Norm)
	if err != nil {
		return nil, err
	}
	f.Metadata[MetaNorm] = string(norm)
	if c.Dataset != "" {
		f.Metadata[MetaDataset] = c.Dataset
	}
	if c.Train != nil {
		b, err := json.Marshal(c.Train)
		if err != nil {
			return nil, err
		}
		f.Metadata[MetaTrain] = string(b)
	}
	if c.OptState != nil {
		f.Metadata[MetaOptimizer] = fmt.Sprintf(`{"steps":%d}`, c.OptSteps)
		for k, v := range c.OptState {
			f.Tensors[optimizerPrefix+k] = safetensors.FromFloat32([]int{len(v)}, v)
		}
	}
	f.Seal()
	return f, nil
}

// Save writes the checkpoint to path atomically (a crash leaves the old
// file or the new one, never a mix).
func (c *Checkpoint) Save(path string) error {
	f, err := c.File()
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if err := f.WriteFile(path); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return nil
}

// LoadCheckpoint reads and validates a checkpoint: a damaged file, a
// missing or misshapen tensor, an unknown tensor or bad metadata is an
// error naming the file and the problem.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	c, err := FromFile(f)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return c, nil
}

// FromFile decodes a checkpoint from a file safetensors.Parse returned
// (which checked its digest).
func FromFile(f *safetensors.File) (*Checkpoint, error) {
	warnings, err := checkFormat(f)
	if err != nil {
		return nil, err
	}
	m, used, err := layers.LoadState(f)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{Model: m, Dataset: f.Metadata[MetaDataset], Warnings: warnings}
	if err := c.readMetadata(f); err != nil {
		return nil, err
	}
	if err := c.readOptimizer(f, used); err != nil {
		return nil, err
	}
	return c, nil
}

// checkFormat checks the checkpoint's format version and returns the
// warnings an old version deserves.
func checkFormat(f *safetensors.File) (warnings []string, err error) {
	switch v := f.Metadata[MetaFormat]; v {
	case FormatVersion:
		if _, ok := f.Metadata[safetensors.MetaDigest]; !ok {
			return nil, fmt.Errorf("no %s metadata (format %q is sealed with a digest)", safetensors.MetaDigest, FormatVersion)
		}
	case FormatV1:
		warnings = append(warnings, fmt.Sprintf("format %q has no digest, so damage to the file cannot be detected: save it again (e.g. qat calibrate or finetune) to get %q", FormatV1, FormatVersion))
	case "":
		return nil, fmt.Errorf("no %s metadata: not a qat checkpoint", MetaFormat)
	default:
		return nil, fmt.Errorf("format %q is not %q (nor %q)", v, FormatVersion, FormatV1)
	}
	return warnings, nil
}

// readMetadata reads the step, epoch, normalisation and training config
// of f into c, whose Model is loaded.
func (c *Checkpoint) readMetadata(f *safetensors.File) error {
	var err error
	if c.Step, err = strconv.ParseInt(f.Metadata[MetaStep], 10, 64); err != nil || c.Step < 0 {
		return fmt.Errorf("metadata %s = %q: want a non-negative integer", MetaStep, f.Metadata[MetaStep])
	}
	if c.Epoch, err = strconv.Atoi(f.Metadata[MetaEpoch]); err != nil || c.Epoch < 0 {
		return fmt.Errorf("metadata %s = %q: want a non-negative integer", MetaEpoch, f.Metadata[MetaEpoch])
	}
	if err := json.Unmarshal([]byte(f.Metadata[MetaNorm]), &c.Norm); err != nil {
		return fmt.Errorf("metadata %s: %w", MetaNorm, err)
	}
	if err := c.Norm.Validate(c.Model.Spec.Input[0]); err != nil {
		return fmt.Errorf("metadata %s: %w", MetaNorm, err)
	}
	if s, ok := f.Metadata[MetaTrain]; ok {
		var cfg Config
		if err := json.Unmarshal([]byte(s), &cfg); err != nil {
			return fmt.Errorf("metadata %s: %w", MetaTrain, err)
		}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("metadata %s: %w", MetaTrain, err)
		}
		c.Train = &cfg
	}
	return nil
}

// readOptimizer reads the optimizer state of f into c: the tensors the
// model did not use (used) must all be optimizer tensors, which need
// their metadata.
func (c *Checkpoint) readOptimizer(f *safetensors.File, used map[string]bool) error {
	var unknown []string
	for name, t := range f.Tensors {
		if used[name] {
			continue
		}
		key, ok := strings.CutPrefix(name, optimizerPrefix)
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		v, err := t.Float32()
		if err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		if c.OptState == nil {
			c.OptState = map[string][]float32{}
		}
		c.OptState[key] = v
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("tensors %s are not part of model %s", strings.Join(unknown, ", "), c.Model.Spec.Name)
	}
	s, ok := f.Metadata[MetaOptimizer]
	if !ok {
		if c.OptState != nil {
			return fmt.Errorf("optimizer tensors without %s metadata", MetaOptimizer)
		}
		return nil
	}
	var o struct {
		Steps int64 `json:"steps"`
	}
	if err := json.Unmarshal([]byte(s), &o); err != nil || o.Steps < 0 {
		return fmt.Errorf("metadata %s = %q: want {\"steps\": n}", MetaOptimizer, s)
	}
	c.OptSteps = o.Steps
	if c.OptState == nil {
		c.OptState = map[string][]float32{}
	}
	return nil
}

// Resume returns a trainer that continues the checkpoint's run with its
// recorded config (epochs may be raised with SetEpochs), optimizer state
// and counters. A distilling run needs its teacher again before Fit:
// SetTeacher with the checkpoint Train.Distill records (LoadTeacher of
// its Teacher path, or of the same checkpoint elsewhere).
func (c *Checkpoint) Resume() (*Trainer, error) {
	if c.Train == nil || c.OptState == nil {
		return nil, fmt.Errorf("checkpoint has no training state to resume (no %s or optimizer state)", MetaTrain)
	}
	t, err := NewTrainer(c.Model, *c.Train)
	if err != nil {
		return nil, err
	}
	if err := t.Opt.LoadState(c.OptState, c.OptSteps); err != nil {
		return nil, fmt.Errorf("optimizer state: %w", err)
	}
	t.Step, t.Epoch = c.Step, c.Epoch
	return t, nil
}
