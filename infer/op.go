package infer

import (
	"fmt"
	"math"
	"math/bits"
	"unsafe"

	"qat/internal/qgemm"
	"qat/internal/qvec"
	"qat/model"
	"qat/qmodel"
)

// op is one prepared operation on NHWC codes. in and out are per-sample
// shapes: [H, W, C] or [N].
type op struct {
	kind    model.OpType
	name    string
	in, out []int
	outQ    qmodel.Quant
	lo, hi  int32 // output clamp (conv, linear, relu, relu6)

	// conv and pools
	k, stride, pad int

	// conv: co is the convolution's own output shape [OH, OW, Out]; out
	// differs from it when a following max pool is fused (poolK > 0: the
	// pool's kernel and stride, see fusePool).
	co           []int
	poolK, poolS int

	// conv and linear
	packed *qgemm.Packed
	zin    uint8   // input zero point, the padding code
	bias   []int32 // bias - zin * column sum
	mult   []float32
	m0     []int32
	shift  []int32
}

// scratch holds a Runner's work buffers, grown on demand.
type scratch struct {
	col  []uint8
	acc  []int32
	pad  []uint8 // one sample staged by im2col
	pool []int32 // accumulators after a fused max pool
	prow []int32 // one row of a fused max pool's row pass
}

// int32s returns (*b)[:n], growing *b on demand.
func int32s(b *[]int32, n int) []int32 {
	if cap(*b) < n {
		*b = make([]int32, n)
	}
	return (*b)[:n]
}

func (s *scratch) padded(n int) []uint8 {
	if cap(s.pad) < n {
		s.pad = make([]uint8, n)
	}
	return s.pad[:n]
}

func (s *scratch) cols(n int) []uint8 {
	if cap(s.col) < n {
		s.col = make([]uint8, n)
	}
	return s.col[:n]
}

func (s *scratch) accs(n int) []int32 {
	if cap(s.acc) < n {
		s.acc = make([]int32, n)
	}
	return s.acc[:n]
}

// newOp prepares o for NHWC input of shape in quantized with inQ. flatFrom
// is the [H, W, C] shape a linear op's input was flattened from, if any:
// its weights are permuted from PyTorch's C, H, W order to H, W, C.
func newOp(o *qmodel.Op, in []int, inQ qmodel.Quant, mode qmodel.Requant, flatFrom []int) (*op, error) {
	p := &op{kind: o.Type, name: o.Name, in: in, outQ: o.Output, lo: o.ClampMin, hi: o.ClampMax,
		k: o.Kernel, stride: o.Stride, pad: o.Padding}
	switch o.Type {
	case model.OpConv:
		if len(in) != 3 || in[2] != o.In {
			return nil, fmt.Errorf("conv input shape %v, want [H W %d]", in, o.In)
		}
		oh, ow := (in[0]+2*o.Padding-o.Kernel)/o.Stride+1, (in[1]+2*o.Padding-o.Kernel)/o.Stride+1
		p.out = []int{oh, ow, o.Out}
		p.co = p.out
		// [Out, In, K, K] -> [Out, K, K, In], the im2col row order.
		k := o.Kernel
		w := make([]int8, len(o.Weight))
		for oc := range o.Out {
			for c := range o.In {
				for i := range k * k {
					w[(oc*k*k+i)*o.In+c] = o.Weight[(oc*o.In+c)*k*k+i]
				}
			}
		}
		if err := p.prepareWeights(o, w, inQ, mode); err != nil {
			return nil, err
		}
	case model.OpLinear:
		if len(in) != 1 || in[0] != o.In {
			return nil, fmt.Errorf("linear input shape %v, want [%d]", in, o.In)
		}
		p.out = []int{o.Out}
		w := o.Weight
		if flatFrom != nil {
			h, wd, c := flatFrom[0], flatFrom[1], flatFrom[2]
			w = make([]int8, len(o.Weight))
			for oc := range o.Out {
				row, src := w[oc*o.In:(oc+1)*o.In], o.Weight[oc*o.In:(oc+1)*o.In]
				for ch := range c {
					for i := range h * wd {
						row[i*c+ch] = src[ch*h*wd+i]
					}
				}
			}
		}
		if err := p.prepareWeights(o, w, inQ, mode); err != nil {
			return nil, err
		}
	case model.OpMaxPool, model.OpAvgPool:
		if len(in) != 3 {
			return nil, fmt.Errorf("pool input shape %v is not [H W C]", in)
		}
		p.out = []int{(in[0]-o.Kernel)/o.Stride + 1, (in[1]-o.Kernel)/o.Stride + 1, in[2]}
	case model.OpFlatten:
		p.out = []int{size(in)}
	case model.OpReLU, model.OpReLU6:
		p.out = in
	default:
		return nil, fmt.Errorf("unknown op type %q", o.Type)
	}
	return p, nil
}

// prepareWeights packs w ([Out, K] in the op's input order) and folds the
// input zero point into the bias: sum (q - z) w = sum q w - z sum w.
func (p *op) prepareWeights(o *qmodel.Op, w []int8, inQ qmodel.Quant, mode qmodel.Requant) error {
	var err error
	if p.packed, err = qgemm.Pack(w, o.Out, len(w)/o.Out, o.WeightBits); err != nil {
		return err
	}
	p.zin = uint8(inQ.ZeroPoint)
	p.bias = make([]int32, o.Out)
	for c, s := range p.packed.ColSums() {
		p.bias[c] = o.Bias[c] - inQ.ZeroPoint*s
	}
	if mode == qmodel.RequantFixed {
		p.m0, p.shift = append([]int32(nil), o.FixedMultiplier...), append([]int32(nil), o.Shift...)
	} else {
		p.mult = append([]float32(nil), o.Multiplier...)
	}
	return nil
}

// inPlace reports whether the op may write its output over its input.
func (p *op) inPlace() bool {
	return p.kind == model.OpFlatten || p.kind == model.OpReLU || p.kind == model.OpReLU6
}

func (p *op) run(dst, src []uint8, batch int, s *scratch) {
	switch p.kind {
	case model.OpConv:
		p.conv(dst, src, batch, s)
	case model.OpLinear:
		acc := s.accs(batch * p.out[0])
		qgemm.Gemm(acc, p.out[0], src, p.in[0], batch, p.packed)
		p.requant(dst, acc)
	case model.OpMaxPool:
		maxPool(dst, src, batch, p.in, p.out, p.k, p.stride, s.cols(p.in[1]*p.in[2]))
	case model.OpAvgPool:
		avgPool(dst, src, batch, p.in, p.out, p.k, p.stride)
	case model.OpReLU, model.OpReLU6:
		lo, hi := uint8(p.lo), uint8(p.hi)
		for i, v := range src {
			dst[i] = min(max(v, lo), hi)
		}
	case model.OpFlatten:
		// NHWC data is already flat; the next linear's weights match it.
	}
}

// convRows is about how many im2col rows a conv processes at a time.
const convRows = 2048

func (p *op) conv(dst, src []uint8, batch int, s *scratch) {
	h, w, c := p.in[0], p.in[1], p.in[2]
	oh, ow, oc := p.co[0], p.co[1], p.co[2]
	kd := p.k * p.k * c
	perSample := oh * ow
	outSample := size(p.out) // codes per sample, after a fused pool
	if p.k == 1 && p.stride == 1 && p.pad == 0 {
		acc := s.accs(batch * perSample * oc)
		qgemm.Gemm(acc, oc, src[:batch*h*w*c], c, batch*perSample, p.packed)
		p.finish(dst[:batch*outSample], acc, batch, s)
		return
	}
	samples := max(1, convRows/perSample)
	for s0 := 0; s0 < batch; s0 += samples {
		n := min(samples, batch-s0)
		rows := n * perSample
		// 16 bytes of slack: im2col copies in 8- and 16-byte words.
		col := s.cols(rows*kd + 16)
		for i := range n {
			p.im2col(col[i*perSample*kd:], src[(s0+i)*h*w*c:], s)
		}
		col = col[:rows*kd]
		acc := s.accs(rows * oc)
		qgemm.Gemm(acc, oc, col, kd, rows, p.packed)
		p.finish(dst[s0*outSample:(s0+n)*outSample], acc, n, s)
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
func (p *op) fusePool(q *op) bool {
	if p.kind != model.OpConv {
		return false
	}
	return p.fusePoolBound(q, p.packed.K())
}

// fusePoolBound is fusePool for K products per accumulator.
func (p *op) fusePoolBound(q *op, K int) bool {
	if p.kind != model.OpConv || q.kind != model.OpMaxPool || p.poolK != 0 || q.k < 1 || q.stride < 1 {
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

// im2col writes the rows of one NHWC sample, the first h*w*c codes of
// src: row (oy, ox) holds the window's codes in (ky, kx, c) order, the
// input zero point where the window leaves the input. The sample is first
// staged into pad, surrounded by the zero point and followed by 16 bytes
// of slack, so that each window row's k*c codes are then gathered with
// one 8-byte word, or with whole 16-byte words, and no bounds checks;
// without padding, src is used in place when its capacity holds the 16
// bytes of slack. col must hold the rows plus 16 bytes, which the last
// words overwrite with garbage.
func (p *op) im2col(col, src []uint8, s *scratch) {
	h, w, c := p.in[0], p.in[1], p.in[2]
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
		fill(staged[:(pad*wp+pad)*c], p.zin)
		for y := range h {
			at := ((y+pad)*wp + pad) * c
			copy(staged[at:at+w*c], src[y*w*c:(y+1)*w*c])
			fill(staged[at+w*c:at+(w+2*pad)*c], p.zin) // this row's right and the next row's left padding
		}
		fill(staged[((h+pad)*wp+pad)*c:hp*rowStride], p.zin)
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

// avgPool averages windows of codes, rounding half to even: each output
// code is divRoundEven of its window's code sum (an evenDivider's), the
// sum accumulated in uint32 (exact for any k below 4096), up to 64
// channels at a time in a stack buffer, so that nothing is allocated.
func avgPool(dst, src []uint8, batch int, in, out []int, k, stride int) {
	h, w, c := in[0], in[1], in[2]
	oh, ow := out[0], out[1]
	div := newEvenDivider(uint32(k * k))
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
					for ky := range k {
						at := ((oy*stride+ky)*w+ox*stride)*c + c0
						for kx := range k {
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
