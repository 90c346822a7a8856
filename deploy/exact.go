package deploy

import (
	"fmt"
	"sync"

	"qat/export"
	"qat/infer"
	"qat/layers"
	"qat/model"
	"qat/qmodel"
	"qat/quant"
)

// Exact is layers.Exact by the int8 runtime: an exact Eval graph (see
// layers.Model.NewExactGraph) freezes each quantized conv or linear layer
// with export.FreezeLayer (folded BN, weight codes, int32 bias, float32
// requantization multiplier) and runs it with infer.Layer on the input
// codes (the batch split across layers.Threads() goroutines, which changes
// nothing), so the codes it outputs, and hence the accuracy it reports,
// are those of the exported model bit for bit. An average pool or a global
// average pool on a grid likewise averages codes with the runtime's
// rounding (infer.AvgPool, infer.GlobalAvgPool).
type Exact struct{}

var _ layers.Exact = Exact{}

// Weighted implements layers.Exact.
func (Exact) Weighted(m *layers.Model, n model.Node, in []int, inQ quant.Params, x, y []float32) error {
	el, err := exportLayer(m, n, in)
	if err != nil {
		return err
	}
	q, err := export.ActQuant(inQ)
	if err != nil {
		return fmt.Errorf("input quantizer: %w", err)
	}
	frozen, err := export.FreezeLayer(el, q, qmodel.RequantFloat)
	if err != nil {
		return err
	}
	il, err := infer.NewLayer(&frozen, in, q, qmodel.RequantFloat)
	if err != nil {
		return err
	}
	xc, yc := getCodes(len(x)), getCodes(len(y))
	defer putCodes(xc, yc)
	codes(*xc, x, q)
	per := 1
	for _, d := range in {
		per *= d
	}
	il.RunParallel(*yc, *xc, len(x)/per, layers.Threads())
	values(y, *yc, frozen.Output)
	return nil
}

// AvgPool implements layers.Exact for avgpool and global_avgpool nodes.
func (Exact) AvgPool(n model.Node, inQ quant.Params, x []float32, xs [4]int, y []float32) error {
	q, err := export.ActQuant(inQ)
	if err != nil {
		return fmt.Errorf("input quantizer: %w", err)
	}
	xc, yc := getCodes(len(x)), getCodes(len(y))
	defer putCodes(xc, yc)
	codes(*xc, x, q)
	switch n.Op {
	case model.OpAvgPool:
		infer.AvgPool(*yc, *xc, xs[0], xs[1], xs[2], xs[3], n.Kernel, n.EffectiveStride())
	case model.OpGlobalAvgPool:
		infer.GlobalAvgPool(*yc, *xc, xs[0], xs[1], xs[2], xs[3])
	default:
		return fmt.Errorf("average pool of a %s node", n.Op)
	}
	values(y, *yc, q)
	return nil
}

// Join implements layers.Exact with the runtime's element rules
// (infer.Add, infer.Requantize), in PyTorch's layout: a concat's output
// holds, per sample, the channels of each input in turn.
func (Exact) Join(n model.Node, inQ []quant.Params, outQ quant.Params, xs [][]float32, batch int, y []float32) error {
	out, err := export.ActQuant(outQ)
	if err != nil {
		return fmt.Errorf("output quantizer: %w", err)
	}
	lo, hi, err := export.Clamp(n.Act, out)
	if err != nil {
		return err
	}
	in := make([]qmodel.Quant, len(xs))
	cs := make([]*[]uint8, len(xs))
	for i, x := range xs {
		if in[i], err = export.ActQuant(inQ[i]); err != nil {
			return fmt.Errorf("input %d quantizer: %w", i, err)
		}
		cs[i] = getCodes(len(x))
		defer putCodes(cs[i])
		codes(*cs[i], x, in[i])
	}
	yc := getCodes(len(y))
	defer putCodes(yc)
	switch n.Op {
	case model.OpAdd:
		if len(xs) != 2 || len(xs[0]) != len(y) || len(xs[1]) != len(y) {
			return fmt.Errorf("add %s of %d inputs into %d values", n.Name, len(xs), len(y))
		}
		infer.Add(*yc, *cs[0], *cs[1], in[0], in[1], out, lo, hi)
	case model.OpConcat:
		at := 0
		for s := range batch {
			for i, c := range cs {
				per := len(*c) / batch
				infer.Requantize((*yc)[at:at+per], (*c)[s*per:(s+1)*per], in[i], out, lo, hi)
				at += per
			}
		}
		if at != len(y) {
			return fmt.Errorf("concat %s of %d values into %d", n.Name, at, len(y))
		}
	default:
		return fmt.Errorf("join of a %s node", n.Op)
	}
	values(y, *yc, out)
	return nil
}

// codePool recycles the code buffers of Exact's calls, one pair per
// evaluation batch, so that an evaluation allocates them once.
var codePool sync.Pool

// getCodes returns a buffer of n codes from codePool.
func getCodes(n int) *[]uint8 {
	if b, ok := codePool.Get().(*[]uint8); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]uint8, n)
	return &b
}

// putCodes returns buffers to codePool.
func putCodes(bs ...*[]uint8) {
	for _, b := range bs {
		codePool.Put(b)
	}
}

// codes quantizes grid values x into dst with q's uint8-domain params.
// Values on the grid come back to their own codes exactly.
func codes(dst []uint8, x []float32, q qmodel.Quant) {
	inv := 1 / q.Scale
	for i, v := range x {
		c, _ := quant.Code(v, inv, q.ZeroPoint, q.QMin, q.QMax)
		dst[i] = uint8(c)
	}
}

// values writes the real values of codes src, as FakeQuantize does.
func values(dst []float32, src []uint8, q qmodel.Quant) {
	for i, c := range src {
		dst[i] = float32(int32(c)-q.ZeroPoint) * q.Scale
	}
}
