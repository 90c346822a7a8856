package train

import (
	"fmt"
	"math"
)

// Schedule kinds accepted by ScheduleConfig.Kind.
const (
	ScheduleConstant = "constant"
	ScheduleStep     = "step"
	ScheduleCosine   = "cosine"
)

// ScheduleConfig describes a learning-rate schedule as a function of the
// optimizer step, optionally preceded by a linear warmup. The schedules are
// the closed forms of PyTorch's schedulers when scheduler.step() is called
// once per optimizer step. Zero values mean the documented defaults; a
// field that does not apply to Kind must be left zero.
type ScheduleConfig struct {
	// Kind is "constant" (or ""), "step" (torch.optim.lr_scheduler.StepLR)
	// or "cosine" (torch.optim.lr_scheduler.CosineAnnealingLR with
	// T_max = total - WarmupSteps).
	Kind string
	// StepSize is the number of optimizer steps between decays of "step";
	// required (> 0) for "step" (PyTorch step_size).
	StepSize int
	// Gamma is the multiplicative decay of "step" (PyTorch gamma); 0 means
	// 0.1. Must be positive and finite.
	Gamma float64
	// MinLR is the final learning rate of "cosine" (PyTorch eta_min);
	// default 0. Must be finite and >= 0.
	MinLR float64
	// WarmupSteps is the length of a linear warmup for any Kind: for
	// s < WarmupSteps the learning rate is base*(s+1)/WarmupSteps, so it
	// reaches base on the last warmup step (PyTorch LinearLR with
	// start_factor=1/WarmupSteps, total_iters=WarmupSteps-1, followed via
	// SequentialLR by the base schedule). The base schedule then runs on
	// s - WarmupSteps. 0 means no warmup.
	WarmupSteps int
}

// Validate reports the first invalid field of c, naming it, or nil.
func (c ScheduleConfig) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("train: ScheduleConfig.%s = %v: %s", field, v, why)
	}
	kind := c.Kind
	if kind == "" {
		kind = ScheduleConstant
	}
	switch kind {
	case ScheduleConstant, ScheduleStep, ScheduleCosine:
	default:
		return bad("Kind", fmt.Sprintf("%q", c.Kind), `want "constant", "step" or "cosine"`)
	}
	if c.WarmupSteps < 0 {
		return bad("WarmupSteps", c.WarmupSteps, "must be >= 0")
	}
	if kind == ScheduleStep {
		if c.StepSize <= 0 {
			return bad("StepSize", c.StepSize, `must be > 0 for "step"`)
		}
		if math.IsNaN(c.Gamma) || math.IsInf(c.Gamma, 0) || c.Gamma < 0 {
			return bad("Gamma", c.Gamma, "must be finite and > 0 (0 means 0.1)")
		}
	} else {
		if c.StepSize != 0 {
			return bad("StepSize", c.StepSize, `applies only to "step"`)
		}
		if c.Gamma != 0 {
			return bad("Gamma", c.Gamma, `applies only to "step"`)
		}
	}
	if kind == ScheduleCosine {
		if math.IsNaN(c.MinLR) || math.IsInf(c.MinLR, 0) || c.MinLR < 0 {
			return bad("MinLR", c.MinLR, "must be finite and >= 0")
		}
	} else if c.MinLR != 0 {
		return bad("MinLR", c.MinLR, `applies only to "cosine"`)
	}
	return nil
}

// LR returns the learning rate for optimizer step s (0-based) of a run of
// total optimizer steps, with base learning rate base. c should be valid
// (see Validate); LR does not check it. s < 0 is treated as 0.
//
// With W = WarmupSteps and k = s - W:
//
//	s < W:      base * (s+1) / W
//	"constant": base
//	"step":     base * Gamma^floor(k/StepSize)
//	"cosine":   MinLR + (base-MinLR) * (1 + cos(pi*k/T)) / 2, T = total - W
//
// The cosine term starts at base for k = 0 and is clamped to MinLR for
// k >= T (and when T <= 0), so steps beyond total do not climb again as
// PyTorch's periodic continuation would. Within a run the last step,
// k = T-1, is still slightly above MinLR, as in PyTorch.
func (c ScheduleConfig) LR(base float64, s, total int) float64 {
	if s < 0 {
		s = 0
	}
	if s < c.WarmupSteps {
		return base * float64(s+1) / float64(c.WarmupSteps)
	}
	k := s - c.WarmupSteps
	switch c.Kind {
	case ScheduleStep:
		g := c.Gamma
		if g == 0 {
			g = 0.1
		}
		if c.StepSize <= 0 {
			return base
		}
		return base * math.Pow(g, float64(k/c.StepSize))
	case ScheduleCosine:
		t := total - c.WarmupSteps
		if k >= t {
			return c.MinLR
		}
		return c.MinLR + (base-c.MinLR)*(1+math.Cos(math.Pi*float64(k)/float64(t)))/2
	default:
		return base
	}
}
