package infer

import (
	"fmt"

	"qat/model"
	"qat/qmodel"
)

// Layer runs one conv (grouped and depthwise ones included) or linear op
// on its own, on codes in PyTorch's layout (NCHW, or [batch, features]).
// The trainer's evaluation graphs use it, so that they compute what a Net
// computes.
type Layer struct {
	op      *op
	inCHW   []int // [C, H, W] for a conv
	in, out []uint8
	s       scratch
}

// NewLayer prepares the conv or linear op o for input of per-sample shape
// in ([C, H, W] for a conv, [In] for a linear) quantized with inQ.
func NewLayer(o *qmodel.Op, in []int, inQ qmodel.Quant, mode qmodel.Requant) (*Layer, error) {
	var nhwc []int
	switch {
	case o.Type == model.OpConv && len(in) == 3:
		nhwc = []int{in[1], in[2], in[0]}
	case o.Type == model.OpLinear && len(in) == 1:
		nhwc = in
	default:
		return nil, fmt.Errorf("infer: layer %s: %s op on input of shape %v", o.Name, o.Type, in)
	}
	p, err := newOp(o, []value{{shape: nhwc, q: inQ}}, mode)
	if err != nil {
		return nil, fmt.Errorf("infer: layer %s: %w", o.Name, err)
	}
	l := &Layer{op: p}
	if o.Type == model.OpConv {
		l.inCHW = in
	}
	return l, nil
}

// OutShape returns the per-sample output shape in PyTorch's layout.
func (l *Layer) OutShape() []int {
	if o := l.op.out; len(o) == 3 {
		return []int{o[2], o[0], o[1]}
	}
	return l.op.out
}

// Run writes the output codes of batch samples of input codes src into
// dst, both in PyTorch's layout.
func (l *Layer) Run(dst, src []uint8, batch int) {
	nin, nout := batch*size(l.op.in), batch*size(l.op.out)
	if len(src) != nin || len(dst) != nout {
		panic(fmt.Sprintf("infer: Layer.Run with %d inputs and %d outputs, want %d and %d", len(src), len(dst), nin, nout))
	}
	if l.inCHW == nil {
		l.op.run(dst, src, batch, &l.s)
		return
	}
	l.in = grow(l.in, nin)
	l.out = grow(l.out, nout)
	c, hw := l.inCHW[0], l.inCHW[1]*l.inCHW[2]
	toNHWC(l.in, src, batch, c, hw, nil)
	l.op.run(l.out, l.in, batch, &l.s)
	oc, ohw := l.op.out[2], l.op.out[0]*l.op.out[1]
	for s := range batch {
		in := l.out[s*oc*ohw : (s+1)*oc*ohw]
		for i := range ohw {
			for ch, v := range in[i*oc : (i+1)*oc] {
				dst[(s*oc+ch)*ohw+i] = v
			}
		}
	}
}

// AvgPool averages k x k windows (stride stride, no padding) of NCHW
// codes [batch, c, h, w] into dst, rounding half to even, as a Net does.
func AvgPool(dst, src []uint8, batch, c, h, w, k, stride int) {
	oh, ow := (h-k)/stride+1, (w-k)/stride+1
	if k < 1 || stride < 1 || oh < 1 || ow < 1 || len(src) != batch*c*h*w || len(dst) != batch*c*oh*ow {
		panic(fmt.Sprintf("infer: AvgPool of %d codes [%d %d %d %d] k %d stride %d into %d", len(src), batch, c, h, w, k, stride, len(dst)))
	}
	// An NCHW plane is an NHWC sample with one channel.
	avgPool(dst, src, batch*c, []int{h, w, 1}, []int{oh, ow, 1}, k, k, stride)
}

// GlobalAvgPool averages each h x w plane of NCHW codes [batch, c, h, w]
// into one code of dst, [batch, c], rounding half to even, as a Net's
// global_avgpool does.
func GlobalAvgPool(dst, src []uint8, batch, c, h, w int) {
	if h < 1 || w < 1 || len(src) != batch*c*h*w || len(dst) != batch*c {
		panic(fmt.Sprintf("infer: GlobalAvgPool of %d codes [%d %d %d %d] into %d", len(src), batch, c, h, w, len(dst)))
	}
	avgPool(dst, src, batch*c, []int{h, w, 1}, []int{1, 1, 1}, h, w, 1)
}

func grow(b []uint8, n int) []uint8 {
	if cap(b) < n {
		return make([]uint8, n)
	}
	return b[:n]
}
