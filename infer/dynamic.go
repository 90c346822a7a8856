package infer

import (
	"fmt"
	"math"
	"slices"

	"qat/internal/qgemm"
	"qat/model"
	"qat/qmodel"
)

// dynOp is a dynamic_linear op of a Net (qmodel.OpDynamicLinear): it
// quantizes each sample's float inputs with their own range
// (DynamicParams, QuantizeDynamic), sums the codes against the int8
// weights exactly in int32 (qgemm) and scales the sums back to floats
// (finishDynamic).
type dynOp struct {
	in, out int
	// deq, for the first dynamic op when it reads codes, maps each input
	// code to its value float32(q - zp) * scale; nil when it reads floats.
	deq *[256]float32
	// w holds the weights packed for qgemm, permuted like a linear op's
	// to read codes in [H W C] order; colSum[j] is the sum of output j's
	// weights, which folds the per-sample zero point out of the sum.
	w      *qgemm.Packed
	colSum []int32
	wScale []float32
	bias   []float32
	act    model.OpType
}

// newDynOp prepares the dynamic_linear o reading x, codes (dequantized
// first, the weights permuted to their order) or floats.
func newDynOp(o *qmodel.Op, x value) (*dynOp, error) {
	if size(x.shape) != o.In {
		return nil, fmt.Errorf("dynamic_linear input shape %v, want %d values", x.shape, o.In)
	}
	d := &dynOp{in: o.In, out: o.Out, wScale: slices.Clone(o.WeightScale), bias: slices.Clone(o.FloatBias), act: o.Act}
	w := o.Weight
	if !x.float {
		d.deq = new([256]float32)
		for q := range d.deq {
			d.deq[q] = float32(int32(q)-x.q.ZeroPoint) * x.q.Scale
		}
		w = inOrderOf(w, o.Out, o.In, x.flat)
	}
	var err error
	if d.w, err = qgemm.Pack(w, o.Out, o.In, 8); err != nil {
		return nil, err
	}
	d.colSum = d.w.ColSums()
	return d, nil
}

// dynBufs are a Runner's buffers for its Net's dynamic ops, made by
// NewRunner for its batch size.
type dynBufs struct {
	in    []float32    // a float input, NCHW: [batch, C*H*W]
	out   [2][]float32 // the dynamic ops' outputs, in turn
	row   []float32    // one sample's dequantized input codes
	q     []uint8      // the samples' input codes [batch, In]
	acc   []int32      // [batch, Out]
	scale []float32    // each sample's input scale
	zp    []int32      // and zero point
	// logits are RunFloat's dequantized codes for a Net without dynamic
	// ops, grown on demand.
	logits []float32
}

func newDynBufs(n *Net, batch int) dynBufs {
	var d dynBufs
	if n.dyn == nil {
		return d
	}
	if n.floatIn {
		d.in = make([]float32, batch*n.inLen)
	}
	in, out := 0, 0
	for _, o := range n.dyn {
		in, out = max(in, o.in), max(out, o.out)
	}
	d.out = [2][]float32{make([]float32, batch*out), make([]float32, batch*out)}
	if n.dyn[0].deq != nil {
		d.row = make([]float32, n.dyn[0].in)
	}
	d.q, d.acc = make([]uint8, batch*in), make([]int32, batch*out)
	d.scale, d.zp = make([]float32, batch), make([]int32, batch)
	return d
}

// runDynamic runs the Net's dynamic ops on batch samples, after its
// static ops (Runner.runOps), and returns their float outputs.
func (r *Runner) runDynamic(batch int) []float32 {
	n, d := r.net, &r.d
	var x []float32 // the values the next op reads: the float input, or an op's outputs
	if n.floatIn {
		x = d.in[:batch*n.inLen]
	}
	for k, o := range n.dyn {
		y := d.out[k%2][:batch*o.out]
		q := d.q[:batch*o.in]
		for s := range batch {
			var v []float32
			if o.deq != nil {
				v = d.row
				for i, c := range r.bufs[n.dynSrc][s*o.in : (s+1)*o.in] {
					v[i] = o.deq[c]
				}
			} else {
				v = x[s*o.in : (s+1)*o.in]
			}
			d.scale[s], d.zp[s] = DynamicParams(v)
			QuantizeDynamic(q[s*o.in:(s+1)*o.in], v, d.scale[s], d.zp[s])
		}
		acc := d.acc[:batch*o.out]
		qgemm.Gemm(acc, o.out, q, o.in, batch, o.w)
		for s := range batch {
			finishDynamic(y[s*o.out:(s+1)*o.out], acc[s*o.out:(s+1)*o.out], d.scale[s], d.zp[s], o)
		}
		x = y
	}
	return x
}

// finishDynamic writes one sample's outputs y of dynamic op o from its
// accumulators acc (sum q w) and its input's scale xs and zero point zp:
// float32(acc - zp*colSum) * float32(xs*wScale) + bias, each float32
// operation rounded on its own, then the activation. acc - zp*colSum is
// sum (q - zp) w, exact in int32: both terms are at most 255*128*In <=
// 255*128*MaxTerms < 2^31 in magnitude, and the wrapped difference is the
// exact one, which fits.
func finishDynamic(y []float32, acc []int32, xs float32, zp int32, o *dynOp) {
	for j, a := range acc {
		v := float32(float32(a-zp*o.colSum[j])*(xs*o.wScale[j])) + o.bias[j]
		switch o.act {
		case model.OpReLU:
			v = relu(v)
		case model.OpReLU6:
			v = relu6(v)
		}
		y[j] = v
	}
}

// relu is (v < 0) ? 0 : v, std::max(v, 0) and onnxruntime's Relu: -0 and
// NaN pass unchanged.
func relu(v float32) float32 {
	if v < 0 {
		return 0
	}
	return v
}

// relu6 is relu, then (6 < v) ? 6 : v, as onnxruntime's Clip(0, 6).
func relu6(v float32) float32 {
	v = relu(v)
	if v > 6 {
		return 6
	}
	return v
}

// DynamicParams returns the scale and zero point with which onnxruntime's
// DynamicQuantizeLinear (uint8, its CPU kernel's GetQuantizationParameter)
// quantizes the values x, in float32 operations in this order:
//
//	min, max = the least and greatest values of x, NaN left out
//	           (min starts at math.MaxFloat32, max at -math.MaxFloat32)
//	min = (0 < min) ? 0 : min;  max = (max < 0) ? 0 : max     (the range holds 0)
//	scale = (max == min) ? 1 : (max - min) / 255
//	z = 0 - min / scale
//	z = (z < 255) ? z : 255;  z = (0 < z) ? z : 0            (NaN gives 255)
//	zero point = roundHalfEven(z)
//
// The range is [0, 0] (scale 1, zero point 0) for x all zeros, empty or
// all NaN. onnxruntime's vectorized reduction may instead let a NaN into
// min or max (docs/int8-model.md: NaN is outside the exactness
// guarantee); the other values, infinities included, give what it gives.
func DynamicParams(x []float32) (scale float32, zp int32) {
	lo, hi := float32(math.MaxFloat32), float32(-math.MaxFloat32)
	for _, v := range x {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	if 0 < lo {
		lo = 0
	}
	if hi < 0 {
		hi = 0
	}
	scale = 1
	if hi != lo {
		scale = (hi - lo) / 255
	}
	z := 0 - lo/scale
	if !(z < 255) {
		z = 255
	}
	if !(0 < z) {
		z = 0
	}
	return scale, int32(roundEven(z))
}

// QuantizeDynamic writes the codes of x with scale and zero point zp into
// q (of x's length), as onnxruntime's MlasQuantizeLinear computes them:
// y = x / scale (a float32 division, not a product by a reciprocal),
// clamped to [-zp, 255-zp] with NaN giving -zp (x86's MAXPS and MINPS,
// arm64's FMAXNM and FMINNM), rounded half to even and offset by zp: a
// code in [0, 255], 0 for NaN.
func QuantizeDynamic(q []uint8, x []float32, scale float32, zp int32) {
	lo, hi := float32(-zp), float32(255-zp)
	for i, v := range x {
		y := v / scale
		if !(y > lo) {
			y = lo
		}
		if !(y < hi) {
			y = hi
		}
		q[i] = uint8(int32(roundEven(y)) + zp)
	}
}

// float32s returns b[:n], made anew when b is too short.
func float32s(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// roundEven rounds y, |y| <= 256, half to even: adding and subtracting
// 1.5*2^23 leaves the integer nearest to y, ties to even, in float32.
func roundEven(y float32) float32 {
	const magic = 1.5 * (1 << 23)
	return float32(y+magic) - magic
}
