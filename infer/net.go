package infer

import (
	"fmt"

	"qat/model"
	"qat/qmodel"
	"qat/quant"
)

// Net is a loaded integer model, its weights packed for the kernels.
type Net struct {
	model   qmodel.Model // without its weight codes
	ops     []*op
	inLen   int // C*H*W
	maxAct  int // largest activation (per sample), in codes
	classes int
	outQ    qmodel.Quant // the last op's Output
	// outHWC is the [H W C] layout of the last op's codes when Run must
	// reorder them to C, H, W.
	outHWC []int
	// pixel maps a pixel to its input code.
	pixel [256]uint8
}

// New prepares m to run: it validates m and packs its weights. The Net
// keeps none of m's slices. A max pool right after a conv runs inside
// the conv when that gives the same codes (see op.fusePool).
func New(m *qmodel.Model) (*Net, error) { return newNet(m, true) }

// newNet is New, with conv and max pool fusion switched off when fuse is
// false (the tests' reference).
func newNet(m *qmodel.Model, fuse bool) (*Net, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	n := &Net{model: *m, classes: m.Classes}
	n.model.Ops = nil
	c, h, w := m.Input[0], m.Input[1], m.Input[2]
	n.inLen = c * h * w
	shape := []int{h, w, c} // NHWC, per sample
	in := m.InputQuant
	var flatFrom []int
	n.maxAct = n.inLen
	for i := range m.Ops {
		o, err := newOp(&m.Ops[i], shape, in, m.Requant, flatFrom)
		if err != nil {
			return nil, fmt.Errorf("infer: op %d (%s): %w", i, m.Ops[i].Name, err)
		}
		// flatFrom is the [H W C] shape flat codes came from, in that
		// order, until a linear op consumes them: element-wise ops and
		// flattening flat codes keep the order.
		switch {
		case o.kind == model.OpFlatten && len(shape) == 3:
			flatFrom = shape
		case o.kind == model.OpFlatten, o.kind == model.OpReLU, o.kind == model.OpReLU6:
		default:
			flatFrom = nil
		}
		// A max pool fused into the conv before it is not an op of its
		// own; what follows sees the pool's shape and Output as before.
		if fuse && len(n.ops) > 0 && n.ops[len(n.ops)-1].fusePool(o) {
			shape, in = o.out, o.outQ
			n.maxAct = max(n.maxAct, size(shape))
			continue
		}
		n.ops = append(n.ops, o)
		shape, in = o.out, o.outQ
		n.maxAct = max(n.maxAct, size(shape))
	}
	n.outQ = in
	// Outputs are in PyTorch's order: channels first.
	switch {
	case len(shape) == 3:
		n.outHWC = shape
	case flatFrom != nil:
		n.outHWC = flatFrom
	}
	if n.outHWC != nil && (n.outHWC[2] == 1 || n.outHWC[0]*n.outHWC[1] == 1) {
		n.outHWC = nil // the orders agree
	}
	inv := 1 / m.InputQuant.Scale
	for p := range n.pixel {
		x := normalize(m.Norm, uint8(p))
		q, _ := quant.Code(x, inv, m.InputQuant.ZeroPoint, m.InputQuant.QMin, m.InputQuant.QMax)
		n.pixel[p] = uint8(q)
	}
	return n, nil
}

// normalize is the pixel normalisation of model.Norm, in float32 (the
// trainer's model.Norm.Apply).
func normalize(n model.Norm, p uint8) float32 {
	x := float32(p) / 255
	if n.Std == 0 {
		return x - n.Mean
	}
	return (x - n.Mean) / n.Std
}

// Model returns the model's description without its weights.
func (n *Net) Model() qmodel.Model { return n.model }

// InputLen returns the number of input values of one sample, C*H*W.
func (n *Net) InputLen() int { return n.inLen }

// Classes returns the number of outputs of one sample.
func (n *Net) Classes() int { return n.classes }

// WeightBytes returns the resident size of the packed weights.
func (n *Net) WeightBytes() int {
	t := 0
	for _, o := range n.ops {
		if o.packed != nil {
			t += o.packed.Bytes()
		}
	}
	return t
}

// OutputQuant returns the quantization of the output codes.
func (n *Net) OutputQuant() qmodel.Quant { return n.outQ }

// Dequantize writes (q - zero point) * scale, in float32, for each output
// code of src into dst (equal lengths).
func (n *Net) Dequantize(dst []float32, src []uint8) {
	if len(dst) != len(src) {
		panic(fmt.Sprintf("infer: Dequantize of %d codes into %d floats", len(src), len(dst)))
	}
	q := n.OutputQuant()
	for i, v := range src {
		dst[i] = float32(int32(v)-q.ZeroPoint) * q.Scale
	}
}

// Argmax writes, for each sample of codes ([batch, classes]), the index of
// its first largest code into dst (len batch).
func (n *Net) Argmax(dst []int, codes []uint8) {
	if len(codes) != len(dst)*n.classes {
		panic(fmt.Sprintf("infer: Argmax of %d codes for %d samples of %d classes", len(codes), len(dst), n.classes))
	}
	for i := range dst {
		row := codes[i*n.classes : (i+1)*n.classes]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		dst[i] = best
	}
}

// Runner runs a Net on batches of at most its batch size. It owns its
// buffers and must not be used by two goroutines at once.
type Runner struct {
	net   *Net
	batch int
	input []uint8 // NHWC input codes
	a, b  []uint8 // activations, ping-pong
	s     scratch
}

// NewRunner returns a Runner for batches of up to batch samples.
func (n *Net) NewRunner(batch int) *Runner {
	if batch < 1 {
		panic(fmt.Sprintf("infer: NewRunner(%d)", batch))
	}
	return &Runner{net: n, batch: batch, input: make([]uint8, batch*n.inLen),
		a: make([]uint8, batch*n.maxAct), b: make([]uint8, batch*n.maxAct)}
}

// Batch returns the largest batch the Runner takes.
func (r *Runner) Batch() int { return r.batch }

func (r *Runner) samples(n int, what string) int {
	if n%r.net.inLen != 0 || n/r.net.inLen > r.batch || n == 0 {
		panic(fmt.Sprintf("infer: %d %s is not 1 to %d samples of %d", n, what, r.batch, r.net.inLen))
	}
	return n / r.net.inLen
}

// Pixels quantizes whole samples of pixels (NCHW, values 0..255) through
// the model's normalisation and input quantizer, and returns the batch size.
func (r *Runner) Pixels(p []uint8) int {
	b := r.samples(len(p), "pixels")
	m := &r.net.model
	toNHWC(r.input, p, b, m.Input[0], m.Input[1]*m.Input[2], func(v uint8) uint8 { return r.net.pixel[v] })
	return b
}

// Quantize quantizes whole samples of normalised input (NCHW) with the
// input quantizer, and returns the batch size. NaN becomes the zero point.
func (r *Runner) Quantize(x []float32) int {
	b := r.samples(len(x), "inputs")
	m := &r.net.model
	q := m.InputQuant
	inv := 1 / q.Scale
	c, hw := m.Input[0], m.Input[1]*m.Input[2]
	for s := range b {
		for ch := range c {
			src := x[(s*c+ch)*hw : (s*c+ch+1)*hw]
			dst := r.input[s*c*hw:]
			for i, v := range src {
				code, _ := quant.Code(v, inv, q.ZeroPoint, q.QMin, q.QMax)
				dst[i*c+ch] = uint8(code)
			}
		}
	}
	return b
}

// Run runs the Net on the batch samples last given to Pixels or Quantize
// and returns their output codes, [batch, classes], owned by the Runner.
func (r *Runner) Run(batch int) []uint8 {
	if batch < 1 || batch > r.batch {
		panic(fmt.Sprintf("infer: Run(%d) on a Runner of batch %d", batch, r.batch))
	}
	cur := r.input[:batch*r.net.inLen]
	inA := false // whether cur is in r.a
	for _, o := range r.net.ops {
		if o.inPlace() {
			o.run(cur, cur, batch, &r.s)
			continue
		}
		dst := r.a
		if inA {
			dst = r.b
		}
		dst = dst[:batch*size(o.out)]
		o.run(dst, cur, batch, &r.s)
		cur, inA = dst, !inA
	}
	if hwc := r.net.outHWC; hwc != nil {
		dst := r.a
		if inA {
			dst = r.b
		}
		h, w, c := hwc[0], hwc[1], hwc[2]
		dst = dst[:len(cur)]
		for s := range batch {
			src, out := cur[s*h*w*c:(s+1)*h*w*c], dst[s*h*w*c:(s+1)*h*w*c]
			for i := range h * w {
				for ch, v := range src[i*c : (i+1)*c] {
					out[ch*h*w+i] = v
				}
			}
		}
		cur = dst
	}
	return cur
}

// toNHWC writes NCHW samples of src into dst channels last, through f.
func toNHWC(dst, src []uint8, batch, c, hw int, f func(uint8) uint8) {
	for s := range batch {
		for ch := range c {
			in := src[(s*c+ch)*hw : (s*c+ch+1)*hw]
			out := dst[s*c*hw:]
			for i, v := range in {
				out[i*c+ch] = f(v)
			}
		}
	}
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
