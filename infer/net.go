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
	ops     []*op        // in run order, each reading earlier ops' buffers
	inLen   int          // C*H*W
	classes int
	outQ    qmodel.Quant // the last op's Output
	// bufs is the per-sample size, in codes, of each buffer a Runner
	// holds: bufs[0] is the input's, the others hold op outputs (op.dst);
	// out is the buffer of the last op's codes.
	bufs []int
	out  int
	// outHWC is the [H W C] layout of the last op's codes when Run must
	// reorder them to C, H, W, into buffer reorder.
	outHWC  []int
	reorder int
	// pixel maps a pixel of each input channel to its input code.
	pixel [][256]uint8

	// Dynamic quantization (dynamic.go). floatIn: the input is floats,
	// NCHW, fpixel mapping a pixel of each channel to its normalised
	// value. dyn: the dynamic_linear ops, which run after the static ones
	// (ops), each reading the one before; the first reads the codes of
	// buffer dynSrc (its deq set) or the float input.
	floatIn bool
	fpixel  [][256]float32
	dyn     []*dynOp
	dynSrc  int
}

// value is an activation of a Net: the model input or an op's output.
type value struct {
	shape []int // per sample: NHWC [H W C], or [N]
	q     qmodel.Quant
	// flat is, for an [N] value, the [H W C] shape its codes were
	// flattened from, in that order, when it differs from PyTorch's C, H,
	// W order; nil otherwise.
	flat []int
	op   int // the index in Net.ops of the op that writes it; -1 for the input
	// float: the value is float32 values (the float input, a dynamic op's
	// output, a flatten of either), in PyTorch's order; q, flat and op do
	// not apply.
	float bool
}

// New prepares m to run: it validates m and packs its weights. The Net
// keeps none of m's slices. A max pool that is the only reader of a conv
// runs inside the conv when that gives the same codes (see op.fusePool).
func New(m *qmodel.Model) (*Net, error) { return newNet(m, true) }

// newNet is New, with conv and max pool fusion switched off when fuse is
// false (the tests' reference).
func newNet(m *qmodel.Model, fuse bool) (*Net, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	n := &Net{model: *m, classes: m.Classes, floatIn: m.FloatInput}
	n.model.Ops = nil
	c, h, w := m.Input[0], m.Input[1], m.Input[2]
	n.inLen = c * h * w
	input := value{shape: []int{h, w, c}, q: m.InputQuant, op: -1, float: m.FloatInput}
	floats := m.Floats()
	dynSrc := -1 // the op of n.ops whose codes the first dynamic op reads
	readers := make([]int, len(m.Ops))
	for i := range m.Ops {
		for _, j := range m.Sources(i) {
			if j >= 0 {
				readers[j]++
			}
		}
	}
	vals := make([]value, len(m.Ops))
	var reads [][]int // for each op of n.ops, the ops of n.ops it reads (-1: the input)
	for i := range m.Ops {
		src := m.Sources(i)
		in := make([]value, len(src))
		for k, j := range src {
			in[k] = input
			if j >= 0 {
				in[k] = vals[j]
			}
		}
		if floats[i] {
			// A dynamic op, or a flatten of floats, which moves nothing.
			vals[i] = value{shape: []int{size(in[0].shape)}, float: true}
			if m.Ops[i].Type != qmodel.OpDynamicLinear {
				continue
			}
			d, err := newDynOp(&m.Ops[i], in[0])
			if err != nil {
				return nil, fmt.Errorf("infer: op %d (%s): %w", i, m.Ops[i].Name, err)
			}
			if d.deq != nil {
				dynSrc = in[0].op
			}
			vals[i].shape, n.dyn = []int{d.out}, append(n.dyn, d)
			continue
		}
		o, err := newOp(&m.Ops[i], in, m.Requant)
		if err != nil {
			return nil, fmt.Errorf("infer: op %d (%s): %w", i, m.Ops[i].Name, err)
		}
		// A max pool fused into the conv it alone reads is not an op of
		// its own: the conv writes the pool's value.
		if p := in[0].op; fuse && src[0] >= 0 && readers[src[0]] == 1 && p >= 0 && n.ops[p].fusePool(o) {
			vals[i] = value{shape: o.out, q: o.outQ, op: p}
			continue
		}
		vals[i] = value{shape: o.out, q: o.outQ, flat: o.flat, op: len(n.ops)}
		r := make([]int, len(in))
		for k, v := range in {
			r[k] = v.op
		}
		reads = append(reads, r)
		n.ops = append(n.ops, o)
	}
	last := vals[len(vals)-1]
	n.outQ = last.q
	// Outputs are in PyTorch's order: channels first.
	switch s := last.shape; {
	case len(s) == 3 && s[2] != 1 && s[0]*s[1] != 1:
		n.outHWC = s
	case len(s) == 1:
		n.outHWC = last.flat
	}
	if m.FloatInput {
		// Every op reads floats: there are no codes.
		n.bufs = []int{0}
		n.fpixel = make([][256]float32, c)
		for ch := range n.fpixel {
			norm := m.Norm.Of(ch)
			for p := range n.fpixel[ch] {
				n.fpixel[ch][p] = norm.Apply(uint8(p))
			}
		}
		return n, nil
	}
	n.plan(reads)
	if dynSrc >= 0 {
		n.dynSrc = n.ops[dynSrc].dst
	}
	inv := 1 / m.InputQuant.Scale
	n.pixel = make([][256]uint8, c)
	for ch := range n.pixel {
		norm := m.Norm.Of(ch)
		for p := range n.pixel[ch] {
			q, _ := quant.Code(norm.Apply(uint8(p)), inv, m.InputQuant.ZeroPoint, m.InputQuant.QMin, m.InputQuant.QMax)
			n.pixel[ch][p] = uint8(q)
		}
	}
	return n, nil
}

// plan assigns every op's output a buffer (op.src, op.dst, n.bufs), given
// for each op the ops it reads (-1: the input), reusing a buffer once no
// op reads what it holds any more: a flatten's output is its input's
// buffer (NHWC codes are already flat), a relu or relu6 that is the last
// reader of its input's buffer writes over it, and every other op takes
// the first free buffer, growing it if needed. The input's buffer is
// never written. For a chain this is two buffers in turn, as ping-pong.
func (n *Net) plan(reads [][]int) {
	lastUse := make([]int, len(n.ops)) // the last op that reads each op's output
	for k, r := range reads {
		for _, j := range r {
			if j >= 0 {
				lastUse[j] = k
			}
		}
	}
	lastUse[len(n.ops)-1] = len(n.ops) // the output, read by Run
	n.bufs = []int{n.inLen}
	busy := []int{len(n.ops)} // the last op that reads each buffer
	bufOf := func(j int) int {
		if j < 0 {
			return 0
		}
		return n.ops[j].dst
	}
	free := func(k int) int { // the first buffer no op from k on reads
		for b := 1; b < len(busy); b++ {
			if busy[b] < k {
				return b
			}
		}
		n.bufs, busy = append(n.bufs, 0), append(busy, -1)
		return len(busy) - 1
	}
	for k, o := range n.ops {
		o.src = make([]int, len(reads[k]))
		for i, j := range reads[k] {
			o.src[i] = bufOf(j)
		}
		switch in := o.src[0]; {
		case o.kind == model.OpFlatten:
			o.dst = in
		case (o.kind == model.OpReLU || o.kind == model.OpReLU6) && in != 0 && busy[in] == k:
			o.dst = in
		default:
			o.dst = free(k)
		}
		busy[o.dst] = max(busy[o.dst], lastUse[k])
		n.bufs[o.dst] = max(n.bufs[o.dst], size(o.out))
	}
	n.out = n.ops[len(n.ops)-1].dst
	if n.outHWC != nil {
		n.reorder = free(len(n.ops)) // not n.out, which Run reads
		n.bufs[n.reorder] = max(n.bufs[n.reorder], size(n.outHWC))
	}
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
		for _, p := range o.packs {
			t += p.Bytes()
		}
		t += len(o.dw)
	}
	for _, o := range n.dyn {
		t += o.w.Bytes()
	}
	return t
}

// FloatInput reports whether the Net reads its input as floats
// (qmodel.Model.FloatInput): Pixels normalises the pixels and Quantize
// takes normalised values as they are.
func (n *Net) FloatInput() bool { return n.floatIn }

// FloatOutput reports whether the Net's outputs are float32 logits (a
// dynamic model, qmodel.Model.Dynamic), which RunFloat returns, rather
// than codes.
func (n *Net) FloatOutput() bool { return n.dyn != nil }

// OutputQuant returns the quantization of the output codes: the zero
// Quant for a Net with float outputs.
func (n *Net) OutputQuant() qmodel.Quant { return n.outQ }

// Dequantize writes (q - zero point) * scale, in float32, for each output
// code of src into dst (equal lengths). It panics for a Net with float
// outputs, which has no output codes.
func (n *Net) Dequantize(dst []float32, src []uint8) {
	if len(dst) != len(src) || n.FloatOutput() {
		panic(fmt.Sprintf("infer: Dequantize of %d codes into %d floats (float outputs: %v)", len(src), len(dst), n.FloatOutput()))
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
	input []uint8   // NHWC input codes, bufs[0]
	bufs  [][]uint8 // the Net's buffers (Net.bufs), for batch samples
	ins   [][]uint8 // the inputs of a join, reused
	s     scratch
	d     dynBufs
}

// NewRunner returns a Runner for batches of up to batch samples.
func (n *Net) NewRunner(batch int) *Runner {
	if batch < 1 {
		panic(fmt.Sprintf("infer: NewRunner(%d)", batch))
	}
	r := &Runner{net: n, batch: batch, bufs: make([][]uint8, len(n.bufs))}
	for b, per := range n.bufs {
		r.bufs[b] = make([]uint8, batch*per)
	}
	r.input = r.bufs[0]
	r.d = newDynBufs(n, batch)
	return r
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
// the model's normalisation and input quantizer, and returns the batch
// size. For a Net with float input it stores the normalised values.
func (r *Runner) Pixels(p []uint8) int {
	b := r.samples(len(p), "pixels")
	m := &r.net.model
	c, hw := m.Input[0], m.Input[1]*m.Input[2]
	if r.net.floatIn {
		for i := range b * c {
			t := &r.net.fpixel[i%c]
			for k, v := range p[i*hw : (i+1)*hw] {
				r.d.in[i*hw+k] = t[v]
			}
		}
		return b
	}
	toNHWC(r.input, p, b, c, hw, r.net.pixel)
	return b
}

// Quantize quantizes whole samples of normalised input (NCHW) with the
// input quantizer, and returns the batch size. NaN becomes the zero point.
// A Net with float input takes the values as they are.
func (r *Runner) Quantize(x []float32) int {
	b := r.samples(len(x), "inputs")
	if r.net.floatIn {
		copy(r.d.in, x)
		return b
	}
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
// It panics for a Net with float outputs (FloatOutput; use RunFloat).
func (r *Runner) Run(batch int) []uint8 {
	r.check(batch)
	if r.net.dyn != nil {
		panic("infer: Run of a net with float outputs: use RunFloat")
	}
	r.runOps(batch)
	n := r.net
	cur := r.bufs[n.out][:batch*size(n.ops[len(n.ops)-1].out)]
	if hwc := n.outHWC; hwc != nil {
		dst := r.bufs[n.reorder][:len(cur)]
		toCHW(dst, cur, batch, hwc)
		cur = dst
	}
	return cur
}

// RunFloat runs the Net on the batch samples last given to Pixels or
// Quantize and returns their float32 outputs, [batch, classes], owned by
// the Runner: the logits of a Net with float outputs, else the output
// codes dequantized (Dequantize).
func (r *Runner) RunFloat(batch int) []float32 {
	if r.net.dyn == nil {
		codes := r.Run(batch)
		r.d.logits = float32s(r.d.logits, len(codes))
		r.net.Dequantize(r.d.logits, codes)
		return r.d.logits
	}
	r.check(batch)
	r.runOps(batch)
	return r.runDynamic(batch)
}

func (r *Runner) check(batch int) {
	if batch < 1 || batch > r.batch {
		panic(fmt.Sprintf("infer: Run(%d) on a Runner of batch %d", batch, r.batch))
	}
}

// runOps runs the Net's ops on codes (all but the dynamic ones) on batch
// samples.
func (r *Runner) runOps(batch int) {
	for _, o := range r.net.ops {
		dst := r.bufs[o.dst][:batch*size(o.out)]
		if len(o.src) == 1 {
			o.run(dst, r.bufs[o.src[0]][:batch*size(o.in)], batch, &r.s)
			continue
		}
		r.ins = r.ins[:0]
		for k, b := range o.src {
			r.ins = append(r.ins, r.bufs[b][:batch*o.inLen(k)])
		}
		o.join(dst, r.ins, batch, &r.s)
	}
}

// toCHW writes samples of [H W C] codes src into dst in C, H, W order.
func toCHW(dst, src []uint8, batch int, hwc []int) {
	h, w, c := hwc[0], hwc[1], hwc[2]
	for s := range batch {
		in, out := src[s*h*w*c:(s+1)*h*w*c], dst[s*h*w*c:(s+1)*h*w*c]
		for i := range h * w {
			for ch, v := range in[i*c : (i+1)*c] {
				out[ch*h*w+i] = v
			}
		}
	}
}

// toNHWC writes NCHW samples of src into dst channels last, each value
// v of channel ch as table[ch][v], or as itself when table is nil.
func toNHWC(dst, src []uint8, batch, c, hw int, table [][256]uint8) {
	for s := range batch {
		out := dst[s*c*hw : (s+1)*c*hw]
		for ch := range c {
			in := src[(s*c+ch)*hw : (s*c+ch+1)*hw]
			switch {
			case table == nil && c == 1:
				copy(out, in)
			case table == nil:
				for i, v := range in {
					out[i*c+ch] = v
				}
			case c == 1:
				t := &table[0]
				for i, v := range in {
					out[i] = t[v]
				}
			default:
				t := &table[ch]
				for i, v := range in {
					out[i*c+ch] = t[v]
				}
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
