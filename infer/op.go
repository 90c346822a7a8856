package infer

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"unsafe"

	"qat/internal/dwconv"
	"qat/internal/qgemm"
	"qat/internal/qvec"
	"qat/model"
	"qat/qmodel"
)

// op is one prepared operation on NHWC codes. in (the first input's) and
// out are per-sample shapes: [H, W, C] or [N].
type op struct {
	kind    model.OpType
	name    string
	in, out []int
	outQ    qmodel.Quant
	lo, hi  int32 // output clamp (conv, linear, add, concat, relu, relu6)
	// flat is, for an [N] output, the [H W C] shape its codes were
	// flattened from, in that order, when it is not PyTorch's (value.flat).
	flat []int

	// conv and pools
	k, stride, pad int

	// conv: co is the convolution's own output shape [OH, OW, Out]; out
	// differs from it when a following max pool is fused (poolK > 0: the
	// pool's kernel and stride, see fusePool).
	co           []int
	poolK, poolS int

	// conv and linear: packs holds the packed weights, one per group of
	// a conv ([Out/G, K*K*In/G] each), or the depthwise weights dw
	// ([K*K, C], tap by tap, widened by dwconv.Weights) and their taps'
	// offsets dwOff in a staged sample replace them (see depthwise);
	// terms is the number of products per accumulator.
	packs []*qgemm.Packed
	dw    []int32
	dwOff []int
	terms int
	// implicit, when set, is the geometry of qgemm.GemmConv on one staged
	// sample: the convolution reads its window rows in place instead of
	// gathering im2col rows (see prepareConv), packs[0] holding the
	// weights in [Out, K, SegLen] order, each window row's k*In codes
	// padded with zeros to SegLen.
	implicit *qgemm.Conv
	zin      uint8   // input zero point, the padding code
	bias     []int32 // bias - zin * column sum (the bias itself for dw)
	mult     []float32
	m0       []int32
	shift    []int32

	// add and concat: the quantization of each input; concat: the
	// channels of each; add: flats, the [H W C] order of each input to
	// bring to PyTorch's (nil: in order), when the two differ.
	inQ   []qmodel.Quant
	cat   []int
	flats [][]int
	// add is an add's qvec.AddCodes parameters, catT each concat
	// input's RequantizeTable: the element rules (see join.go).
	add  qvec.AddParams
	catT []*[256]uint8

	// In a Net: the buffers of the inputs and of the output.
	src []int
	dst int
}

// scratch holds a Runner's work buffers, grown on demand.
type scratch struct {
	col []uint8
	acc []int32
	pad []uint8 // one sample staged by im2col or a padded max pool
	grp []uint8 // one group's channels of one sample
	// border holds, for each op that pads its input (an implicit conv's
	// codes, a depthwise conv's int32 q - zin), the op's own buffer for
	// one padded sample, whose border (the padding code, or 0) is written
	// when the buffer is made and never again: each sample then writes
	// only the inside.
	border   map[*op][]uint8
	borderDW map[*op][]int32
	pool     []int32    // accumulators after a fused max pool
	prow     []int32    // one row of a fused max pool's row pass
	order    [2][]uint8 // an add's inputs, brought to PyTorch's order
}

// int32s returns (*b)[:n], growing *b on demand.
func int32s(b *[]int32, n int) []int32 {
	if cap(*b) < n {
		*b = make([]int32, n)
	}
	return (*b)[:n]
}

// uint8s returns (*b)[:n], growing *b on demand.
func uint8s(b *[]uint8, n int) []uint8 {
	if cap(*b) < n {
		*b = make([]uint8, n)
	}
	return (*b)[:n]
}

func (s *scratch) padded(n int) []uint8 { return uint8s(&s.pad, n) }

func (s *scratch) cols(n int) []uint8 { return uint8s(&s.col, n) }

func (s *scratch) accs(n int) []int32 { return int32s(&s.acc, n) }

// newOp prepares o for NHWC inputs in, one per source: their shapes,
// quantization and order (value.flat: a linear op's weights are permuted
// from PyTorch's C, H, W order to H, W, C).
func newOp(o *qmodel.Op, in []value, mode qmodel.Requant) (*op, error) {
	x := in[0]
	p := &op{kind: o.Type, name: o.Name, in: x.shape, outQ: o.Output, lo: o.ClampMin, hi: o.ClampMax,
		k: o.Kernel, stride: o.Stride, pad: o.Padding}
	switch o.Type {
	case model.OpConv:
		if len(x.shape) != 3 || x.shape[2] != o.In {
			return nil, fmt.Errorf("conv input shape %v, want [H W %d]", x.shape, o.In)
		}
		oh, ow := (x.shape[0]+2*o.Padding-o.Kernel)/o.Stride+1, (x.shape[1]+2*o.Padding-o.Kernel)/o.Stride+1
		p.out = []int{oh, ow, o.Out}
		p.co = p.out
		g := o.Node().EffectiveGroups()
		return p, p.prepareConv(o, x.q, mode, g > 1 && g == o.In && g == o.Out)
	case model.OpLinear:
		if len(x.shape) != 1 || x.shape[0] != o.In {
			return nil, fmt.Errorf("linear input shape %v, want [%d]", x.shape, o.In)
		}
		p.out = []int{o.Out}
		packed, err := qgemm.Pack(inOrderOf(o.Weight, o.Out, o.In, x.flat), o.Out, o.In, o.WeightBits)
		if err != nil {
			return nil, err
		}
		p.packs, p.terms = []*qgemm.Packed{packed}, o.In
		p.prepareRequant(o, x.q, mode, packed.ColSums())
	case model.OpMaxPool, model.OpAvgPool:
		if len(x.shape) != 3 {
			return nil, fmt.Errorf("pool input shape %v is not [H W C]", x.shape)
		}
		p.out = []int{(x.shape[0]+2*o.Padding-o.Kernel)/o.Stride + 1, (x.shape[1]+2*o.Padding-o.Kernel)/o.Stride + 1, x.shape[2]}
	case model.OpGlobalAvgPool:
		if len(x.shape) != 3 {
			return nil, fmt.Errorf("pool input shape %v is not [H W C]", x.shape)
		}
		p.out = []int{1, 1, x.shape[2]}
	case model.OpFlatten:
		p.out = []int{size(x.shape)}
		p.flat = x.flat
		if s := x.shape; len(s) == 3 && s[2] != 1 && s[0]*s[1] != 1 {
			p.flat = s
		}
	case model.OpReLU, model.OpReLU6:
		p.out, p.flat = x.shape, x.flat
	case model.OpAdd:
		p.out, p.inQ = x.shape, []qmodel.Quant{in[0].q, in[1].q}
		p.add = addParams(in[0].q, in[1].q, p.outQ, p.lo, p.hi)
		p.flat = x.flat
		if !slices.Equal(in[0].flat, in[1].flat) {
			p.flats, p.flat = [][]int{in[0].flat, in[1].flat}, nil
		}
	case model.OpConcat:
		if len(x.shape) != 3 {
			return nil, fmt.Errorf("concat input shape %v is not [H W C]", x.shape)
		}
		p.out = []int{x.shape[0], x.shape[1], 0}
		for _, v := range in {
			p.inQ, p.cat = append(p.inQ, v.q), append(p.cat, v.shape[2])
			p.catT = append(p.catT, RequantizeTable(v.q, p.outQ, p.lo, p.hi))
			p.out[2] += v.shape[2]
		}
	default:
		return nil, fmt.Errorf("unknown op type %q", o.Type)
	}
	return p, nil
}

// inOrderOf returns the weights w of a linear op, [out, in] in PyTorch's
// C, H, W order of its input, permuted to read flat codes in the [H W C]
// order hwc (value.flat): w itself when hwc is nil.
func inOrderOf(w []int8, out, in int, hwc []int) []int8 {
	if hwc == nil {
		return w
	}
	h, wd, c := hwc[0], hwc[1], hwc[2]
	p := make([]int8, len(w))
	for oc := range out {
		row, src := p[oc*in:(oc+1)*in], w[oc*in:(oc+1)*in]
		for ch := range c {
			for i := range h * wd {
				row[i*c+ch] = src[ch*h*wd+i]
			}
		}
	}
	return p
}

// prepareConv prepares the weights of conv o on input codes quantized
// with inQ: for the depthwise kernel when direct (Groups = In = Out),
// else packed per group for qgemm, each output channel's weights
// reordered from [In/G, K, K] to [K, K, In/G], the im2col row order.
func (p *op) prepareConv(o *qmodel.Op, inQ qmodel.Quant, mode qmodel.Requant, direct bool) error {
	g, kk := o.Node().EffectiveGroups(), o.Kernel*o.Kernel
	cg, og := o.In/g, o.Out/g
	p.terms, p.packs, p.dw = cg*kk, nil, nil
	if direct {
		// [C, 1, K, K] -> [K*K, C].
		w := make([]int8, len(o.Weight))
		for c := range o.Out {
			for t := range kk {
				w[t*o.Out+c] = o.Weight[c*kk+t]
			}
		}
		p.dw = dwconv.Weights(w)
		rs := (p.in[1] + 2*p.pad) * o.In // a staged row
		p.dwOff = nil
		for ky := range o.Kernel {
			for kx := range o.Kernel {
				p.dwOff = append(p.dwOff, ky*rs+kx*o.In)
			}
		}
		p.prepareRequant(o, inQ, mode, nil)
		return nil
	}
	w := make([]int8, len(o.Weight))
	for oc := range o.Out {
		for c := range cg {
			for t := range kk {
				w[(oc*kk+t)*cg+c] = o.Weight[(oc*cg+c)*kk+t]
			}
		}
	}
	if ic := p.implicitConv(o.WeightBits, g); ic != nil {
		// Each output channel's k window rows of k*In codes, padded to
		// SegLen with zero codes (which add nothing whatever the codes
		// they meet: the next pixels').
		kc := o.Kernel * o.In
		padded := make([]int8, o.Out*o.Kernel*ic.SegLen)
		for oc := range o.Out {
			for ky := range o.Kernel {
				copy(padded[(oc*o.Kernel+ky)*ic.SegLen:], w[(oc*o.Kernel+ky)*kc:(oc*o.Kernel+ky+1)*kc])
			}
		}
		packed, err := qgemm.Pack(padded, o.Out, o.Kernel*ic.SegLen, o.WeightBits)
		if err != nil {
			return err
		}
		p.packs, p.implicit = []*qgemm.Packed{packed}, ic
		p.prepareRequant(o, inQ, mode, packed.ColSums())
		return nil
	}
	sums := make([]int32, 0, o.Out)
	for gi := range g {
		packed, err := qgemm.Pack(w[gi*og*p.terms:(gi+1)*og*p.terms], og, p.terms, o.WeightBits)
		if err != nil {
			return err
		}
		p.packs, sums = append(p.packs, packed), append(sums, packed.ColSums()...)
	}
	p.prepareRequant(o, inQ, mode, sums)
	return nil
}

// useImplicit enables implicit convolutions (see implicitConv); tests
// switch it off to check the im2col path on the same models.
var useImplicit = true

// implicitConv returns the geometry with which conv p of groups groups
// (input and output shapes set), with weights of bits, reads its input
// through qgemm.GemmConv instead of gathering im2col rows, or nil where
// the im2col path stays: grouped convolutions, 1x1 convolutions of
// stride 1 without padding (a plain GEMM on the input), output rows
// narrower than 8 (shorter tiles than im2col's), and geometries the
// selected kernel would gather anyway (qgemm.ConvDirect). The staged
// sample (conv) is [H+2pad, W+2pad, In] codes, each window row of k*In
// codes a segment padded to the weights' unit of k.
func (p *op) implicitConv(bits, groups int) *qgemm.Conv {
	w, c := p.in[1], p.in[2]
	k, st, pad := p.k, p.stride, p.pad
	uk := 32 / bits
	if !useImplicit || groups > 1 || k == 1 && st == 1 && pad == 0 || p.co[1] < 8 {
		return nil
	}
	wp := w + 2*pad
	g := &qgemm.Conv{OH: p.co[0], OW: p.co[1], RowStep: st * wp * c, ColStep: st * c, SegStride: wp * c,
		Segs: k, SegLen: (k*c + uk - 1) / uk * uk}
	if !qgemm.ConvDirect(*g) {
		return nil
	}
	return g
}

// prepareRequant sets the input zero point, the bias and the
// requantization arrays. With the weights' column sums sums it folds the
// input zero point into the bias, sum (q - z) w = sum q w - z sum w, for
// kernels that sum q w; without (nil), kernels sum (q - z) w themselves.
func (p *op) prepareRequant(o *qmodel.Op, inQ qmodel.Quant, mode qmodel.Requant, sums []int32) {
	p.zin = uint8(inQ.ZeroPoint)
	p.bias = slices.Clone(o.Bias)
	for c, s := range sums {
		p.bias[c] -= inQ.ZeroPoint * s
	}
	if mode == qmodel.RequantFixed {
		p.m0, p.shift = slices.Clone(o.FixedMultiplier), slices.Clone(o.Shift)
	} else {
		p.mult = slices.Clone(o.Multiplier)
	}
}

// inLen returns the per-sample length of input k (add, concat).
func (p *op) inLen(k int) int {
	if p.kind == model.OpConcat {
		return p.out[0] * p.out[1] * p.cat[k]
	}
	return size(p.in)
}

func (p *op) run(dst, src []uint8, batch int, s *scratch) {
	switch p.kind {
	case model.OpConv:
		p.conv(dst, src, batch, s)
	case model.OpLinear:
		acc := s.accs(batch * p.out[0])
		qgemm.Gemm(acc, p.out[0], src, p.in[0], batch, p.packs[0])
		p.requant(dst, acc)
	case model.OpMaxPool:
		if p.pad == 0 {
			maxPool(dst, src, batch, p.in, p.out, p.k, p.stride, s.cols(p.in[1]*p.in[2]))
			return
		}
		h, w, c := p.in[0], p.in[1], p.in[2]
		padded := []int{h + 2*p.pad, w + 2*p.pad, c}
		for b := range batch {
			staged := s.padded(size(padded))
			stage(staged, src[b*h*w*c:(b+1)*h*w*c], h, w, c, p.pad, 0)
			maxPool(dst[b*size(p.out):(b+1)*size(p.out)], staged, 1, padded, p.out, p.k, p.stride, s.cols(padded[1]*c))
		}
	case model.OpAvgPool:
		avgPool(dst, src, batch, p.in, p.out, p.k, p.k, p.stride)
	case model.OpGlobalAvgPool:
		avgPool(dst, src, batch, p.in, p.out, p.in[0], p.in[1], 1)
	case model.OpReLU, model.OpReLU6:
		lo, hi := uint8(p.lo), uint8(p.hi)
		for i, v := range src {
			dst[i] = min(max(v, lo), hi)
		}
	case model.OpFlatten:
		// NHWC data is already flat; the next linear's weights match it.
	}
}

// join runs an add or concat on its inputs src (batch samples each) with
// the element rules of Add (qvec.AddCodes) and Requantize (looked up in
// RequantizeTable): an add element by element, both inputs first brought
// to PyTorch's order when their orders differ (flats); a concat pixel by
// pixel, each input's requantized codes in turn filling its channels.
func (p *op) join(dst []uint8, src [][]uint8, batch int, s *scratch) {
	if p.kind == model.OpAdd {
		a, b := src[0], src[1]
		if p.flats != nil {
			a, b = inOrder(&s.order[0], a, batch, p.flats[0]), inOrder(&s.order[1], b, batch, p.flats[1])
		}
		qvec.AddCodes(dst[:len(a)], a, b[:len(a)], p.add)
		return
	}
	c, at := p.out[2], 0
	for k, in := range src {
		ck, t := p.cat[k], p.catT[k]
		for i := range len(in) / ck {
			d := dst[i*c+at : i*c+at+ck]
			for j, x := range in[i*ck : (i+1)*ck] {
				d[j] = t[x]
			}
		}
		at += ck
	}
}

// inOrder returns codes of batch samples in PyTorch's C, H, W order: src
// itself when hwc is nil, else src reordered from [H W C] into *buf.
func inOrder(buf *[]uint8, src []uint8, batch int, hwc []int) []uint8 {
	if hwc == nil {
		return src
	}
	dst := uint8s(buf, len(src))
	toCHW(dst, src, batch, hwc)
	return dst
}

// stage writes the [h w c] codes src into dst surrounded by pad rows and
// columns of code v: [h+2pad, w+2pad, c].
func stage(dst, src []uint8, h, w, c, pad int, v uint8) {
	wp := w + 2*pad
	fill(dst[:(pad*wp+pad)*c], v)
	for y := range h {
		at := ((y+pad)*wp + pad) * c
		copy(dst[at:at+w*c], src[y*w*c:(y+1)*w*c])
		fill(dst[at+w*c:at+(w+2*pad)*c], v) // this row's right and the next row's left padding
	}
	fill(dst[((h+pad)*wp+pad)*c:(h+2*pad)*wp*c], v)
}

// convRows is about how many im2col rows a conv processes at a time.
const convRows = 2048

// conv computes a convolution's accumulators, per block of samples, and
// finishes them into codes: with the depthwise kernel, or per group with
// qgemm on the group's im2col rows (a 1x1 conv of stride 1 without
// padding on the input itself, whose pixels are the rows).
func (p *op) conv(dst, src []uint8, batch int, s *scratch) {
	h, w, c := p.in[0], p.in[1], p.in[2]
	oh, ow, oc := p.co[0], p.co[1], p.co[2]
	g := max(len(p.packs), 1)
	cg, og := c/g, oc/g
	kd := p.k * p.k * cg
	perSample := oh * ow
	outSample := size(p.out) // codes per sample, after a fused pool
	if p.dw == nil && p.k == 1 && p.stride == 1 && p.pad == 0 {
		acc := s.accs(batch * perSample * oc)
		for gi, b := range p.packs {
			qgemm.Gemm(acc[gi*og:], oc, src[gi*cg:batch*h*w*c], c, batch*perSample, b)
		}
		p.finish(dst[:batch*outSample], acc, batch, s)
		return
	}
	if p.implicit != nil {
		p.convImplicit(dst, src, batch, s)
		return
	}
	samples := max(1, convRows/perSample)
	for s0 := 0; s0 < batch; s0 += samples {
		n := min(samples, batch-s0)
		rows := n * perSample
		acc := s.accs(rows * oc)
		if p.dw != nil {
			for i := range n {
				p.depthwise(acc[i*perSample*oc:(i+1)*perSample*oc], src[(s0+i)*h*w*c:(s0+i+1)*h*w*c], s)
			}
			p.finish(dst[s0*outSample:(s0+n)*outSample], acc, n, s)
			continue
		}
		// 16 bytes of slack: im2col copies in 8- and 16-byte words.
		col := s.cols(rows*kd + 16)
		for gi, b := range p.packs {
			for i := range n {
				x := src[(s0+i)*h*w*c:]
				if g > 1 {
					x = s.group(x[:h*w*c], c, gi, cg)
				}
				p.im2col(col[i*perSample*kd:], x, cg, s)
			}
			qgemm.Gemm(acc[gi*og:], oc, col[:rows*kd], kd, rows, b)
		}
		p.finish(dst[s0*outSample:(s0+n)*outSample], acc, n, s)
	}
}

// convImplicit is conv through qgemm.GemmConv, sample by sample in
// blocks of about convRows output pixels: each sample is read in place
// when it has no padding (with the following codes, or 16 bytes of spare
// capacity, covering the window rows' SegLen - k*In bytes read past its
// last pixel), else staged, surrounded by the input zero point.
func (p *op) convImplicit(dst, src []uint8, batch int, s *scratch) {
	h, w, c := p.in[0], p.in[1], p.in[2]
	g, oc := *p.implicit, p.co[2]
	hwc, perSample, outSample := h*w*c, g.OH*g.OW, size(p.out)
	end := g.SrcLen()
	samples := max(1, convRows/perSample)
	for s0 := 0; s0 < batch; s0 += samples {
		n := min(samples, batch-s0)
		acc := s.accs(n * perSample * oc)
		for i := range n {
			x := src[(s0+i)*hwc:]
			switch {
			case p.pad > 0:
				x = p.stageInside(s, x[:hwc])
			case cap(x) < end:
				staged := s.padded(end)
				copy(staged, x[:hwc])
				x = staged
			}
			qgemm.GemmConv(acc[i*perSample*oc:], oc, x[:end], g, p.packs[0])
		}
		p.finish(dst[s0*outSample:(s0+n)*outSample], acc, n, s)
	}
}

// stageInside returns the implicit conv p's staged sample src: its own
// buffer of the padded rows and columns (some of which a stride may leave
// unread) and 16 bytes past them (which the last window row may read),
// made once filled with the input zero point, into which it copies src's
// rows.
func (p *op) stageInside(s *scratch, src []uint8) []uint8 {
	h, w, c, pad := p.in[0], p.in[1], p.in[2], p.pad
	wp := w + 2*pad
	b := ownBuffer(&s.border, p, (h+2*pad)*wp*c+16, p.zin)
	for y := range h {
		copy(b[((y+pad)*wp+pad)*c:], src[y*w*c:(y+1)*w*c])
	}
	return b
}

// ownBuffer returns op p's buffer of n values in *m (scratch.border,
// scratch.borderDW), made filled with v the first time.
func ownBuffer[T uint8 | int32](m *map[*op][]T, p *op, n int, v T) []T {
	b := (*m)[p]
	if b == nil {
		if *m == nil {
			*m = map[*op][]T{}
		}
		b = make([]T, n)
		for i := range b {
			b[i] = v
		}
		(*m)[p] = b
	}
	return b
}

// group returns channels [gi*cg, (gi+1)*cg) of every pixel of the NHWC
// sample src of c channels, with 16 bytes of capacity to spare (so that
// im2col reads it in place).
func (s *scratch) group(src []uint8, c, gi, cg int) []uint8 {
	hw := len(src) / c
	if cap(s.grp) < hw*cg+16 {
		s.grp = make([]uint8, hw*cg+16)
	}
	g := s.grp[:hw*cg]
	for i := range hw {
		copy(g[i*cg:(i+1)*cg], src[i*c+gi*cg:i*c+(gi+1)*cg])
	}
	return g
}

// depthwise writes the accumulators [OH*OW, C] of one NHWC sample src
// ([H W C]) of a depthwise conv (one input and one output channel a
// group) into acc: acc = sum over the window's taps of (q - zin) * w, a
// padded tap holding zin, so 0. That is exactly the GEMM path's
// sum q w - zin sum w, and acc + bias (the op's own bias here) its acc +
// bias: the same codes. The sample is staged, padded, as int32 q - zin;
// dwconv.Row then sums each output row's taps (int32 sums of K*K <=
// MaxTerms terms of at most 255*128 each: no overflow).
func (p *op) depthwise(acc []int32, src []uint8, s *scratch) {
	h, w, c := p.in[0], p.in[1], p.in[2]
	oh, ow := p.co[0], p.co[1]
	st, pad := p.stride, p.pad
	wp := w + 2*pad
	x := ownBuffer(&s.borderDW, p, (h+2*pad)*wp*c, 0)
	for y := range h {
		dwconv.Center(x[((y+pad)*wp+pad)*c:((y+pad)*wp+pad+w)*c], src[y*w*c:(y+1)*w*c], p.zin)
	}
	for oy := range oh {
		dwconv.Row(acc[oy*ow*c:(oy+1)*ow*c], x[oy*st*wp*c:], p.dw, p.dwOff, c, ow, st*c)
	}
}

// finish turns the accumulators of n samples ([n*OH*OW, Out]) into their
// output codes: requantized, or, with a fused max pool, max-pooled first
// (see fusePool) and then requantized, 4 times fewer values for a 2x2
// pool.
func (p *op) finish(dst []uint8, acc []int32, n int, s *scratch) {
	if p.poolK == 0 {
		p.requant(dst, acc)
		return
	}
	oh, ow, oc := p.co[0], p.co[1], p.co[2]
	ph, pw := p.out[0], p.out[1]
	k, step := p.poolK, p.poolS*oc
	owc, pwc := ow*oc, pw*oc
	pooled := int32s(&s.pool, n*ph*pwc)
	row := int32s(&s.prow, owc)
	for i := range n {
		a := acc[i*oh*owc : (i+1)*oh*owc]
		d := pooled[i*ph*pwc : (i+1)*ph*pwc]
		for py := range ph {
			y := py * p.poolS
			r := a[y*owc : (y+1)*owc]
			if k > 1 {
				// The row pass: the maxima of rows y..y+k-1, one window
				// of k chunks of ow*oc values.
				qvec.MaxWindowsInt32(row, a[y*owc:(y+k)*owc], owc, k, 0)
				r = row
			}
			qvec.MaxWindowsInt32(d[py*pwc:(py+1)*pwc], r, oc, k, step)
		}
	}
	p.requant(dst, pooled)
}

// fusePool makes conv p compute the max pool q (of p's output) as well,
// when that gives the same codes: it pools the accumulators, before
// requantization, instead of the codes, after it. For each channel the
// code is f(acc) = clamp(requant(acc + bias)), and max_i f(a_i) =
// f(max_i a_i) whenever f is non-decreasing (the maximum a_j of the
// window gives f(a_j) >= f(a_i) for every i, and f(a_j) is one of the
// window's codes; ties change nothing). f is non-decreasing when
//   - acc + bias never wraps in int32: |acc| <= 255*128*K for u8 x s8
//     sums of K products, so |bias| + 255*128*K <= MaxInt32 suffices;
//   - float: the multiplier is finite and positive: float32 conversion,
//     the product by m > 0, the clamp and rounding half to even are each
//     non-decreasing (IEEE rounding is monotone);
//   - fixed: m0 >= 0: the left shift and its int32 saturation, srdhm
//     (the rounded high word of x*m0, non-decreasing in x for m0 >= 0,
//     its one saturating case needing m0 = MinInt32), RoundingDivideByPOT
//     (rounding x/2^e to nearest), adding zp and the clamp are each
//     non-decreasing.
//
// Otherwise (and for anything but conv then max pool) it returns false
// and changes nothing.
func (p *op) fusePool(q *op) bool { return p.fusePoolBound(q, p.terms) }

// fusePoolBound is fusePool for K products per accumulator. A padded pool
// is never fused.
func (p *op) fusePoolBound(q *op, K int) bool {
	if p.kind != model.OpConv || q.kind != model.OpMaxPool || p.poolK != 0 || q.k < 1 || q.stride < 1 || q.pad != 0 {
		return false
	}
	bound := int64(255*128) * int64(K)
	for _, b := range p.bias {
		if int64(b)+bound > math.MaxInt32 || int64(b)-bound < math.MinInt32 {
			return false
		}
	}
	for _, m := range p.mult {
		if !(m > 0 && m <= math.MaxFloat32) {
			return false
		}
	}
	for _, m := range p.m0 {
		if m < 0 {
			return false
		}
	}
	p.poolK, p.poolS, p.out = q.k, q.stride, q.out
	return true
}

// im2col writes the rows of one NHWC sample of c channels (the op's
// input's, or one group's), the first h*w*c codes of src: row (oy, ox)
// holds the window's codes in (ky, kx, c) order, the
// input zero point where the window leaves the input. The sample is first
// staged into pad, surrounded by the zero point and followed by 16 bytes
// of slack, so that each window row's k*c codes are then gathered with
// one 8-byte word, or with whole 16-byte words, and no bounds checks;
// without padding, src is used in place when its capacity holds the 16
// bytes of slack. col must hold the rows plus 16 bytes, which the last
// words overwrite with garbage.
func (p *op) im2col(col, src []uint8, c int, s *scratch) {
	h, w := p.in[0], p.in[1]
	oh, ow := p.co[0], p.co[1]
	k, st, pad := p.k, p.stride, p.pad
	hp, wp := h+2*pad, w+2*pad
	kc, rowStride := k*c, wp*c
	var staged []uint8
	switch {
	case pad == 0 && cap(src) >= h*w*c+16:
		// src itself, its slack the codes that follow it (read, never
		// used).
		staged = src[:h*w*c+16]
	case pad == 0:
		staged = s.padded(h*w*c + 16)
		copy(staged, src[:h*w*c])
	default:
		staged = s.padded(hp*rowStride + 16)
		stage(staged, src, h, w, c, pad, p.zin)
	}
	// The last row read starts at ((oh-1)*st+k-1)*rowStride + (ow-1)*st*c
	// and its words end less than 16 bytes past its kc codes, inside the
	// slack; likewise for the writes into col, each of which the next row
	// overwrites but for the last one's, in col's slack.
	if len(col) < oh*ow*k*kc+16 || len(staged) < hp*rowStride+16 {
		panic("infer: im2col buffers too short")
	}
	cp, sp := unsafe.Pointer(unsafe.SliceData(col)), unsafe.Pointer(unsafe.SliceData(staged))
	if kc < 4 {
		gatherInOrder(cp, sp, oh, ow, k, kc, st*c, st*rowStride, rowStride)
	} else {
		gatherByRow(cp, sp, oh, ow, k, kc, st*c, st*rowStride, rowStride)
	}
}

// gatherInOrder writes im2col's oh*ow rows of k window rows of kc <= 8
// codes each from staged to col (both with the slack im2col checked):
// window (oy, ox)'s first row starts at oy*rowStep + ox*colStep in
// staged, its next rows rowStride apart. It copies one 8-byte word a
// window row, in the order of col, so that each word's garbage past its
// kc codes is overwritten by the next.
func gatherInOrder(col, staged unsafe.Pointer, oh, ow, k, kc, colStep, rowStep, rowStride int) {
	at := 0
	for oy := range oh {
		from := oy * rowStep
		for range ow {
			f := from
			for range k {
				*(*uint64)(unsafe.Add(col, at)) = *(*uint64)(unsafe.Add(staged, f))
				at += kc
				f += rowStride
			}
			from += colStep
		}
	}
}

// gatherByRow is gatherInOrder for kc >= 4, faster: for each output row oy
// it copies window row ky of every window before window row ky+1 (so
// that consecutive copies neither overlap nor read far apart). Window rows
// ky < k-1 are copied in whole words (one 8-byte word for kc <= 8, else
// 16-byte words), whose garbage, at most kc bytes as kc >= 4, lands in
// window row ky+1 of the same window, copied later; the last window row
// is copied exactly, so it overwrites nothing of the next window.
func gatherByRow(col, staged unsafe.Pointer, oh, ow, k, kc, colStep, rowStep, rowStride int) {
	kkc := k * kc
	for oy := range oh {
		for ky := range k - 1 {
			at, f := oy*ow*kkc+ky*kc, oy*rowStep+ky*rowStride
			if kc <= 8 {
				x := 0
				for ; x+4 <= ow; x += 4 {
					*(*uint64)(unsafe.Add(col, at)) = *(*uint64)(unsafe.Add(staged, f))
					*(*uint64)(unsafe.Add(col, at+kkc)) = *(*uint64)(unsafe.Add(staged, f+colStep))
					*(*uint64)(unsafe.Add(col, at+2*kkc)) = *(*uint64)(unsafe.Add(staged, f+2*colStep))
					*(*uint64)(unsafe.Add(col, at+3*kkc)) = *(*uint64)(unsafe.Add(staged, f+3*colStep))
					at += 4 * kkc
					f += 4 * colStep
				}
				for ; x < ow; x++ {
					*(*uint64)(unsafe.Add(col, at)) = *(*uint64)(unsafe.Add(staged, f))
					at += kkc
					f += colStep
				}
				continue
			}
			for range ow {
				for i := 0; i < kc; i += 16 {
					*(*[2]uint64)(unsafe.Add(col, at+i)) = *(*[2]uint64)(unsafe.Add(staged, f+i))
				}
				at += kkc
				f += colStep
			}
		}
		// The last window row: whole 16-byte words, then 8, 4, 2 and 1
		// bytes, from one word read up to 8 bytes past the codes.
		at, f := oy*ow*kkc+(k-1)*kc, oy*rowStep+(k-1)*rowStride
		whole, tail := kc&^15, kc&15
		for range ow {
			d, s := unsafe.Add(col, at), unsafe.Add(staged, f)
			for i := 0; i < whole; i += 16 {
				*(*[2]uint64)(unsafe.Add(d, i)) = *(*[2]uint64)(unsafe.Add(s, i))
			}
			d, s = unsafe.Add(d, whole), unsafe.Add(s, whole)
			if tail&8 != 0 {
				*(*uint64)(d) = *(*uint64)(s)
				d, s = unsafe.Add(d, 8), unsafe.Add(s, 8)
			}
			v := *(*uint64)(s)
			if tail&4 != 0 {
				*(*uint32)(d) = uint32(v)
				d, v = unsafe.Add(d, 4), v>>32
			}
			if tail&2 != 0 {
				*(*uint16)(d) = uint16(v)
				d, v = unsafe.Add(d, 2), v>>16
			}
			if tail&1 != 0 {
				*(*uint8)(d) = uint8(v)
			}
			at += kkc
			f += colStep
		}
	}
}

func fill(b []uint8, v uint8) {
	for i := range b {
		b[i] = v
	}
}

// requant turns accumulators [rows, Out] into output codes.
func (p *op) requant(dst []uint8, acc []int32) {
	zp, lo, hi := p.outQ.ZeroPoint, p.lo, p.hi
	if p.mult != nil {
		qvec.RequantFloat(dst, acc, p.bias, p.mult, zp, lo, hi)
		return
	}
	qvec.RequantFixed(dst, acc, p.bias, p.m0, p.shift, zp, lo, hi)
}

// maxPool takes, for each output row, the maximum of the window's input
// rows with whole-row vector maxima into row (w*c codes of scratch), then
// the maximum over each window's columns with one qvec.MaxWindows.
func maxPool(dst, src []uint8, batch int, in, out []int, k, stride int, row []uint8) {
	h, w, c := in[0], in[1], in[2]
	oh, ow := out[0], out[1]
	wc, owc := w*c, ow*c
	row = row[:wc]
	for b := range batch {
		s := src[b*h*wc : (b+1)*h*wc]
		d := dst[b*oh*owc : (b+1)*oh*owc]
		for oy := range oh {
			y := oy * stride
			r := s[y*wc : (y+1)*wc]
			if k > 1 {
				qvec.MaxBytes(row, r, s[(y+1)*wc:(y+2)*wc])
				for ky := 2; ky < k; ky++ {
					qvec.MaxBytes(row, row, s[(y+ky)*wc:(y+ky+1)*wc])
				}
				r = row
			}
			qvec.MaxWindows(d[oy*owc:(oy+1)*owc], r, c, k, stride*c)
		}
	}
}

// avgPool averages kh x kw windows of codes, rounding half to even: each
// output code is divRoundEven of its window's code sum (an
// evenDivider's), the sum accumulated in uint32 (exact for windows of
// fewer than 2^24 codes; MaxTerms bounds them), up to 64 channels at a
// time in a stack buffer, so that nothing is allocated. A global average
// pool is the one window of the whole input.
func avgPool(dst, src []uint8, batch int, in, out []int, kh, kw, stride int) {
	h, w, c := in[0], in[1], in[2]
	oh, ow := out[0], out[1]
	div := newEvenDivider(uint32(kh * kw))
	var buf [64]uint32
	for b := range batch {
		s := src[b*h*w*c : (b+1)*h*w*c]
		d := dst[b*oh*ow*c : (b+1)*oh*ow*c]
		for oy := range oh {
			for ox := range ow {
				o := d[(oy*ow+ox)*c : (oy*ow+ox+1)*c]
				for c0 := 0; c0 < c; c0 += len(buf) {
					sum := buf[:min(len(buf), c-c0)]
					clear(sum)
					for ky := range kh {
						at := ((oy*stride+ky)*w+ox*stride)*c + c0
						for kx := range kw {
							for ch, v := range s[at+kx*c : at+kx*c+len(sum)] {
								sum[ch] += uint32(v)
							}
						}
					}
					for ch, t := range sum {
						o[c0+ch] = uint8(div.div(t))
					}
				}
			}
		}
	}
}

// evenDivider computes divRoundEven(t, n) for a fixed n >= 1 without a
// division: floor(t/n) is the high word of t * ceil(2^64/n), exactly for
// every uint32 t, as the multiplier exceeds 2^64/n by less than 1 and t
// by less than 2^32 (n = 1 keeps t as it is).
type evenDivider struct {
	n uint32
	m uint64 // ceil(2^64/n); 0 for n = 1
}

func newEvenDivider(n uint32) evenDivider {
	if n == 1 {
		return evenDivider{n: 1}
	}
	return evenDivider{n: n, m: math.MaxUint64/uint64(n) + 1}
}

func (d evenDivider) div(t uint32) uint32 {
	q := t
	if d.m != 0 {
		hi, _ := bits.Mul64(uint64(t), d.m)
		q = uint32(hi)
	}
	if r := t - q*d.n; 2*r > d.n || (2*r == d.n && q&1 == 1) {
		q++
	}
	return q
}

// divRoundEven returns t/n rounded half to even.
func divRoundEven(t, n uint32) uint32 {
	q, r := t/n, t%n
	if 2*r > n || (2*r == n && q&1 == 1) {
		q++
	}
	return q
}
