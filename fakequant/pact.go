package fakequant

import (
	"fmt"

	"qat/internal/floats"
	"qat/quant"
	"qat/ste"
)

// PACT (Choi et al. 2018, "PACT: Parameterized Clipping Activation for
// Quantized Neural Networks") replaces a ReLU's output by
// y = quantize(clip(x, 0, alpha)) with a learned clipping threshold alpha
// and unsigned codes of scale alpha/QMax, zero point 0: ste.PACTParams.
// A LearnableFakeQuant with LearnableConfig.PACT is that quantizer with
// alpha = scale*QMax kept in its scale node, so that everything handling
// learnable scales (checkpoints, export, exact evaluation) handles PACT.
//
// Its gradients are the paper's straight-through ones. With respect to x:
// dL/dy inside the clipping range, 0 outside (ste.Clipped, the same as
// LSQ's). With respect to alpha, the paper's eq. 3:
//
//	dL/dalpha = sum of dL/dy over the elements with x >= alpha
//
// (ste.PACT), since y = alpha there and, through the straight-through
// rounding, y does not depend on alpha inside the range. As a gradient of
// the scale node s = alpha/QMax this is dL/ds = QMax * dL/dalpha. An
// element counts as clipped when its code saturates at QMax, exactly as the
// forward pass computes it (quant.Code), which differs from the paper's
// x >= alpha only within half a step above alpha. With AlphaDecay lambda,
// the paper's L2 regularisation lambda/2*alpha^2 adds lambda*alpha to
// dL/dalpha.

// checkPACT reports why cfg cannot be a PACT quantizer.
func checkPACT(cfg LearnableConfig) error {
	switch {
	case cfg.QMin != 0:
		return fmt.Errorf("code range [%d, %d] does not start at 0 (pact quantizes unsigned)", cfg.QMin, cfg.QMax)
	case cfg.PerChannel:
		return fmt.Errorf("per-channel quantizer (pact learns one threshold per tensor)")
	case cfg.LearnZeroPoint:
		return fmt.Errorf("learned zero point (pact fixes it at 0)")
	case cfg.GradFactor != 0:
		return fmt.Errorf("gradient factor %g set (pact scales no gradient)", cfg.GradFactor)
	}
	return nil
}

// InitPACT returns initial scale and zero-point values for a PACT
// quantizer from the params of obs, which must have seen calibration data.
// alpha starts at the top of the observer's range, (QMax - zero point) *
// scale: the observed maximum for min/max observers (exactly so after a
// ReLU, where the observed minimum is 0 and so is the zero point), the
// chosen clipping point for histogram ones. The scale is alpha/QMax and the
// zero point 0. The observer's params must be per tensor over unsigned codes
// with a positive top.
func InitPACT(obs quant.Observer) (scale, zeroPoint []float32, err error) {
	p, err := obs.Params()
	if err != nil {
		return nil, nil, err
	}
	if !p.PerTensor() || p.QMin != 0 {
		return nil, nil, fmt.Errorf("pact: observer params are not per tensor over unsigned codes")
	}
	alpha := float32(p.QMax-p.ZeroPoint[0]) * p.Scale[0]
	if !(alpha > 0) || !floats.Finite(alpha) {
		return nil, nil, fmt.Errorf("pact: observed range tops out at %g, want a positive clipping threshold", alpha)
	}
	return []float32{alpha / float32(p.QMax)}, []float32{0}, nil
}

// pactScaleGrad returns the gradient of the scale node of a PACT quantizer
// whose forward pass applied p to x, given the output gradient gy:
// QMax * (dL/dalpha + AlphaDecay*alpha), PACT eq. 3 plus its L2 term.
func (l *LearnableFakeQuant) pactScaleGrad(gy, x []float32, p quant.Params) float32 {
	qmax := float64(p.QMax)
	gradAlpha := float64(ste.PACT(nil, gy, x, p))
	alpha := float64(p.Scale[0]) * qmax
	return float32(qmax * (gradAlpha + float64(l.cfg.AlphaDecay)*alpha))
}
