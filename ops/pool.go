package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
	"qat/internal/par"
)

// MaxPool2d returns the maximum of each kernel×kernel window of x
// [N, C, H, W] (float32, NCHW, row-major, known shape), stepping stride
// pixels in H and W, without padding: MaxPool2dPadded with padding 0.
func MaxPool2d(x *gorgonia.Node, kernel, stride int) (*gorgonia.Node, error) {
	return applyPool(x, kernel, stride, 0, false)
}

// MaxPool2dPadded returns the maximum of each kernel×kernel window of x
// [N, C, H, W] (float32, NCHW, row-major, known shape) padded with
// padding pixels of -Inf on each side of H and W, stepping stride pixels:
// y is [N, C, OH, OW] with OH = (H+2P-kernel)/stride+1 and
// OW = (W+2P-kernel)/stride+1 (floor mode: rows and columns a stride does
// not reach are ignored, as in PyTorch's default). Padding never wins:
// the window is clipped to the input, as in PyTorch's CPU kernel, and
// padding <= kernel/2 (PyTorch's limit) leaves every window at least one
// input element. stride 0 means stride = kernel (PyTorch's default);
// kernel < 1, stride < 0, padding < 0 or above kernel/2, a kernel larger
// than the padded H or W, and inputs that are not 4-D float32 are errors
// here, at build time. A run checks the value's shape again and returns
// an error naming the op.
//
// The gradient op takes x and dY and routes each output's gradient to the
// element of its clipped window that PyTorch's CPU kernel picks: scanning
// the window in row-major order from a running maximum of -Inf, an element
// replaces it when it is greater or NaN. So among equal maxima the first
// wins; a NaN makes the output NaN and takes the gradient (the last NaN of
// the window if there are several); a window of -Inf routes to its first
// element. Where windows overlap (stride < kernel) the gradients of an
// element add up. The forward op records the index it picked for every
// output, privately to its node, and the gradient op (inputs x, y and dY:
// y only so that it runs after the forward of the same run) routes by that
// record instead of scanning x again. Each op node owns its output tensor
// (and the forward its index record) and overwrites it on every run (see
// Buffers in the package doc); inputs are never written.
func MaxPool2dPadded(x *gorgonia.Node, kernel, stride, padding int) (*gorgonia.Node, error) {
	return applyPool(x, kernel, stride, padding, false)
}

// AvgPool2d returns the mean of each kernel×kernel window of x
// [N, C, H, W]: the sum (accumulated in float64) divided by kernel*kernel.
// Geometry, stride 0, errors and buffers as for MaxPool2d (there is no
// padding, so no count_include_pad question). The gradient op takes x (for
// its shape) and dY and adds dY/(kernel*kernel) to every element of each
// window; overlapping windows add up.
func AvgPool2d(x *gorgonia.Node, kernel, stride int) (*gorgonia.Node, error) {
	return applyPool(x, kernel, stride, 0, true)
}

func applyPool(x *gorgonia.Node, kernel, stride, padding int, avg bool) (*gorgonia.Node, error) {
	name := "ops." + poolName(avg)
	if err := checkNode(x, "input", 4); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	op := newPool(kernel, stride, padding, avg)
	if _, err := op.geometry(x.Shape(), stride); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	y, err := gorgonia.ApplyOp(op, x)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return y, nil
}

// poolGeom is a checked pooling geometry.
type poolGeom struct{ n, c, h, w, oh, ow int }

func (g poolGeom) inShape() tensor.Shape  { return tensor.Shape{g.n, g.c, g.h, g.w} }
func (g poolGeom) outShape() tensor.Shape { return tensor.Shape{g.n, g.c, g.oh, g.ow} }

// poolOp is MaxPool2d (padded or not) or, when avg, AvgPool2d: input x.
type poolOp struct {
	base
	id      uint64
	k, s, p int // s already defaulted; p is max pooling's -Inf padding
	avg     bool
	out     graphval.Buffer
	rec     poolRecord
}

// newPool returns the forward op of a MaxPool2d or, when avg, AvgPool2d
// (padding 0); stride 0 means stride = kernel.
func newPool(kernel, stride, padding int, avg bool) *poolOp {
	if stride == 0 {
		stride = kernel
	}
	id := graphval.NewID()
	op := &poolOp{id: id, k: kernel, s: stride, p: padding, avg: avg}
	if padding != 0 {
		op.base = named("%s(k=%d,s=%d,p=%d)#%d", poolName(avg), kernel, stride, padding, id)
	} else {
		op.base = named("%s(k=%d,s=%d)#%d", poolName(avg), kernel, stride, id)
	}
	return op
}

func poolName(avg bool) string {
	if avg {
		return "AvgPool2d"
	}
	return "MaxPool2d"
}

// poolRecord is what a max-pooling forward leaves for its gradient op in
// the same run: the geometry and, for every output, the index in its
// input plane of the element it picked.
type poolRecord struct {
	ran bool
	g   poolGeom
	arg []int32
}

// geometry checks xs against the op's kernel; stride is the caller's
// stride before defaulting, for the error message.
func (op *poolOp) geometry(xs tensor.Shape, stride int) (poolGeom, error) {
	if op.k < 1 {
		return poolGeom{}, fmt.Errorf("kernel %d is not positive", op.k)
	}
	if stride < 0 {
		return poolGeom{}, fmt.Errorf("stride %d is negative", stride)
	}
	if op.p < 0 {
		return poolGeom{}, fmt.Errorf("padding %d is negative", op.p)
	}
	if 2*op.p > op.k {
		return poolGeom{}, fmt.Errorf("padding %d is more than half the kernel %d", op.p, op.k)
	}
	if len(xs) != 4 {
		return poolGeom{}, fmt.Errorf("input shape %v is %d-D, want 4-D [N, C, H, W]", xs, len(xs))
	}
	for _, d := range xs {
		if d < 1 {
			return poolGeom{}, fmt.Errorf("input shape %v has an unknown or empty dimension", xs)
		}
	}
	g := poolGeom{n: xs[0], c: xs[1], h: xs[2], w: xs[3]}
	if h, w := g.h+2*op.p, g.w+2*op.p; op.k > h || op.k > w {
		if op.p == 0 {
			return poolGeom{}, fmt.Errorf("kernel %d is larger than the input's %dx%d (input %v)", op.k, g.h, g.w, xs)
		}
		return poolGeom{}, fmt.Errorf("kernel %d is larger than the input's %dx%d padded to %dx%d (input %v)", op.k, g.h, g.w, h, w, xs)
	}
	g.oh = (g.h+2*op.p-op.k)/op.s + 1
	g.ow = (g.w+2*op.p-op.k)/op.s + 1
	return g, nil
}

// window returns the first input row (or column) of output row (or
// column) i's window, clipped to the input of that size, and how many it
// spans: the window less the padding.
func (op *poolOp) window(i, size int) (first, n int) {
	lo := i*op.s - op.p
	return max(lo, 0), min(lo+op.k, size) - max(lo, 0)
}

func (op *poolOp) Arity() int    { return 1 }
func (op *poolOp) Type() hm.Type { return hm.NewFnType(graphval.TypeImg, graphval.TypeImg) }
func (op *poolOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	xs, err := graphval.ShapeArg(ds, 0)
	if err != nil {
		return nil, err
	}
	g, err := op.geometry(xs, op.s)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return g.outShape(), nil
}

// readInput reads and checks vals[0], the pool input.
func (op *poolOp) readInput(who fmt.Stringer, v gorgonia.Value) ([]float32, poolGeom, error) {
	x, xs, err := graphval.ReadFloat32s(who, v, "input")
	if err != nil {
		return nil, poolGeom{}, err
	}
	g, err := op.geometry(xs, op.s)
	if err != nil {
		return nil, poolGeom{}, fmt.Errorf("%v: %w", who, err)
	}
	return x, g, nil
}

func (op *poolOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	op.rec.ran = false
	x, g, err := op.readInput(op, vals[0])
	if err != nil {
		return nil, err
	}
	out, y := op.out.Dense(g.outShape())
	plane := g.h * g.w
	if op.avg {
		// Planes are independent: split across goroutines.
		par.Range(g.n*g.c, plane, func(lo, hi int) { op.avgPlanes(y, x, g, lo, hi) })
		return out, nil
	}
	if plane > math.MaxInt32 {
		return nil, fmt.Errorf("%v: input plane of %d elements is too large", op, plane)
	}
	if cap(op.rec.arg) < len(y) {
		op.rec.arg = make([]int32, len(y))
	}
	arg := op.rec.arg[:len(y)]
	// Planes are independent: split across goroutines.
	par.Range(g.n*g.c, plane, func(lo, hi int) { op.maxPlanes(y, arg, x, g, lo, hi) })
	op.rec = poolRecord{ran: true, g: g, arg: arg}
	return out, nil
}

// avgPlanes writes the average pooling y of planes [lo, hi) of x, of
// geometry g.
func (op *poolOp) avgPlanes(y, x []float32, g poolGeom, lo, hi int) {
	plane, oplane := g.h*g.w, g.oh*g.ow
	inv := 1 / float64(op.k*op.k)
	for p := lo; p < hi; p++ {
		xp := x[p*plane : (p+1)*plane]
		yp := y[p*oplane : (p+1)*oplane]
		for i := 0; i < g.oh; i++ {
			for j := 0; j < g.ow; j++ {
				var s float64
				for a := 0; a < op.k; a++ {
					row := xp[(i*op.s+a)*g.w+j*op.s:]
					for _, v := range row[:op.k] {
						s += float64(v)
					}
				}
				yp[i*g.ow+j] = float32(s * inv)
			}
		}
	}
}

// maxPlanes writes the max pooling y of planes [lo, hi) of x, of
// geometry g, and to arg the index in its plane of each pick.
func (op *poolOp) maxPlanes(y []float32, arg []int32, x []float32, g poolGeom, lo, hi int) {
	plane, oplane := g.h*g.w, g.oh*g.ow
	for p := lo; p < hi; p++ {
		xp := x[p*plane : (p+1)*plane]
		yp := y[p*oplane : (p+1)*oplane]
		ap := arg[p*oplane : (p+1)*oplane]
		if op.k == 2 && op.s == 2 && op.p == 0 {
			maxPool2x2(yp, ap, xp, g.w, g.oh, g.ow)
			continue
		}
		for i := 0; i < g.oh; i++ {
			h0, kh := op.window(i, g.h)
			for j := 0; j < g.ow; j++ {
				w0, kw := op.window(j, g.w)
				idx := maxIndex(xp, g.w, h0, w0, kh, kw)
				yp[i*g.ow+j] = xp[idx]
				ap[i*g.ow+j] = int32(idx)
			}
		}
	}
}

// maxPool2x2 is maxIndex for kernel 2 and stride 2 over one plane x of
// width w, writing the maxima to y and their indices to arg (oh*ow each).
// The pick is the last NaN of the window if there is one, else the first
// element greater than all before it, starting from the first element:
// the same element maxIndex picks. Without NaN a tournament finds it: the
// later of two elements wins only when strictly greater, in each row and
// then between the rows' winners. Each comparison sets a 0/1 flag (a
// conditional move, not a branch, which would mispredict on random data)
// and the flags give the offset of the pick. A sum of the window that is
// NaN sends it to the exact NaN check (it is also NaN for +Inf with -Inf).
func maxPool2x2(y []float32, arg []int32, x []float32, w, oh, ow int) {
	const abs, inf = 0x7fffffff, 0x7f800000
	w32 := int32(w)
	for i := 0; i < oh; i++ {
		i0 := int32(2 * i * w) // index of the band's first element
		band := x[2*i*w : 2*i*w+w+2*ow]
		yr, ar := y[i*ow:(i+1)*ow], arg[i*ow:(i+1)*ow]
		ar = ar[:len(yr)]
		for j := range yr {
			t := band[2*j : 2*j+2 : 2*j+2]
			u := band[w+2*j : w+2*j+2 : w+2*j+2]
			a, b, c, d := t[0], t[1], u[0], u[1]
			var s0, s1, s2 int32
			if b > a {
				s0 = 1
			}
			if d > c {
				s1 = 1
			}
			if u[s1&1] > t[s0&1] {
				s2 = 1
			}
			off := s2*w32 + s0 + (s1-s0)*s2
			if sum := a + b + c + d; sum != sum {
				b0, b1, b2, b3 := math.Float32bits(a), math.Float32bits(b), math.Float32bits(c), math.Float32bits(d)
				if max(b0&abs, b1&abs, b2&abs, b3&abs) > inf {
					off = lastNaN2(0, w32, b0, b1, b2, b3)
				}
			}
			ar[j] = i0 + int32(2*j) + off
			yr[j] = band[int32(2*j)+off]
		}
	}
}

// lastNaN2 returns the index of the last NaN of the 2×2 window at i0 in
// a plane of width w, given that it has one, from its elements' bits.
func lastNaN2(i0, w int32, b0, b1, b2, b3 uint32) int32 {
	const abs, inf = 0x7fffffff, 0x7f800000
	switch {
	case b3&abs > inf:
		return i0 + w + 1
	case b2&abs > inf:
		return i0 + w
	case b1&abs > inf:
		return i0 + 1
	}
	return i0
}

// maxIndex returns the index in x (one [H, W] plane of width w) of the
// element PyTorch's CPU max pooling picks in the kh×kw window at (h0, w0)
// (a window clipped to the input, see poolOp.window):
// from a running maximum of -Inf and the window's first index, in
// row-major order, an element greater than the maximum or NaN becomes the
// pick. mv only serves the comparisons: max keeps NaN once seen, as
// PyTorch's maxval = NaN then fails every "greater" test. Written without
// branches on the data, which mispredict on random inputs.
func maxIndex(x []float32, w, h0, w0, kh, kw int) int {
	best := h0*w + w0
	mv := float32(math.Inf(-1))
	for a := 0; a < kh; a++ {
		base := (h0+a)*w + w0
		for b, v := range x[base : base+kw] {
			c := base + b
			if v > mv {
				best = c
			}
			if v != v {
				best = c
			}
			mv = max(mv, v)
		}
	}
	return best
}

func (op *poolOp) DiffWRT(inputs int) []bool { return []bool{true} }

func (op *poolOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%v: %d inputs, want 1", op, len(inputs))
	}
	var gx *gorgonia.Node
	var err error
	if op.avg {
		gx, err = gorgonia.ApplyOp(newPoolGrad(op, false), inputs[0], grad)
	} else {
		gx, err = gorgonia.ApplyOp(newPoolGrad(op, true), inputs[0], output, grad)
	}
	if err != nil {
		return nil, fmt.Errorf("%v: input gradient: %w", op, err)
	}
	return gorgonia.Nodes{gx}, nil
}

var _ gorgonia.SDOp = (*poolOp)(nil)

// poolGradOp is the input gradient of a poolOp: inputs x, dY or, when
// useRec (max pooling as SymDiff builds it), x, y and dY, routing by the
// forward's record. Without useRec a max-pooling gradient scans x again.
type poolGradOp struct {
	base
	fwd    *poolOp
	useRec bool
	out    graphval.Buffer
}

func newPoolGrad(fwd *poolOp, useRec bool) *poolGradOp {
	return &poolGradOp{base: named("%sGrad#%d", poolName(fwd.avg), fwd.id), fwd: fwd, useRec: useRec}
}

func (op *poolGradOp) Arity() int {
	if op.useRec {
		return 3
	}
	return 2
}
func (op *poolGradOp) Type() hm.Type {
	if op.useRec {
		return hm.NewFnType(graphval.TypeImg, graphval.TypeImg, graphval.TypeImg, graphval.TypeImg)
	}
	return hm.NewFnType(graphval.TypeImg, graphval.TypeImg, graphval.TypeImg)
}
func (op *poolGradOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return graphval.ShapeArg(ds, 0)
}

func (op *poolGradOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	k, s := op.fwd.k, op.fwd.s
	x, g, err := op.fwd.readInput(op, vals[0])
	if err != nil {
		return nil, err
	}
	dy, dys, err := graphval.ReadFloat32s(op, vals[len(vals)-1], "output gradient")
	if err != nil {
		return nil, err
	}
	if !dys.Eq(g.outShape()) {
		return nil, fmt.Errorf("%v: output gradient has shape %v, want %v", op, dys, g.outShape())
	}
	var arg []int32
	if op.useRec {
		if arg, err = op.recordedArg(g); err != nil {
			return nil, err
		}
	}
	out, dx := op.out.Dense(g.inShape())
	// Planes are independent (a window never leaves its plane): split
	// across goroutines.
	par.Range(g.n*g.c, g.h*g.w, func(lo, hi int) {
		switch {
		case arg != nil:
			routeGrad(dx, dy, arg, g, lo, hi)
		case !op.fwd.avg:
			op.fwd.maxPoolGradScan(dx, dy, x, g, lo, hi)
		default:
			avgPoolGrad(dx, dy, g, k, s, lo, hi)
		}
	})
	return out, nil
}

// recordedArg returns the indices the max-pooling forward recorded for
// input geometry g, which must be the one it saw.
func (op *poolGradOp) recordedArg(g poolGeom) ([]int32, error) {
	rec := &op.fwd.rec
	if !rec.ran {
		return nil, fmt.Errorf("%v: gradient run before the forward pass", op)
	}
	if rec.g != g {
		return nil, fmt.Errorf("%v: input shape %v, the forward saw %v", op, g.inShape(), rec.g.inShape())
	}
	return rec.arg, nil
}

// routeGrad writes the max-pooling input gradient dx of planes [lo, hi),
// of geometry g, from the output gradient dy and the forward's picks arg.
func routeGrad(dx, dy []float32, arg []int32, g poolGeom, lo, hi int) {
	plane, oplane := g.h*g.w, g.oh*g.ow
	for p := lo; p < hi; p++ {
		dxp := dx[p*plane : (p+1)*plane]
		dyp := dy[p*oplane : (p+1)*oplane]
		clear(dxp)
		// Overlapping windows (stride < kernel) may pick one element
		// twice: add, as maxPoolGradScan does.
		for o, i := range arg[p*oplane : (p+1)*oplane] {
			dxp[i] += dyp[o]
		}
	}
}

// maxPoolGradScan writes the input gradient dx of planes [lo, hi) of
// op's max pooling of x, of geometry g, from the output gradient dy,
// scanning x again for the picks.
func (op *poolOp) maxPoolGradScan(dx, dy, x []float32, g poolGeom, lo, hi int) {
	plane, oplane := g.h*g.w, g.oh*g.ow
	for p := lo; p < hi; p++ {
		dxp := dx[p*plane : (p+1)*plane]
		dyp := dy[p*oplane : (p+1)*oplane]
		clear(dxp)
		xp := x[p*plane : (p+1)*plane]
		for i := 0; i < g.oh; i++ {
			h0, kh := op.window(i, g.h)
			for j := 0; j < g.ow; j++ {
				w0, kw := op.window(j, g.w)
				dxp[maxIndex(xp, g.w, h0, w0, kh, kw)] += dyp[i*g.ow+j]
			}
		}
	}
}

// avgPoolGrad writes the input gradient dx of planes [lo, hi) of a k×k,
// stride s average pooling, of geometry g, from the output gradient dy:
// each output's gradient spread evenly over its window.
func avgPoolGrad(dx, dy []float32, g poolGeom, k, s, lo, hi int) {
	plane, oplane := g.h*g.w, g.oh*g.ow
	div := float32(k * k)
	for p := lo; p < hi; p++ {
		dxp := dx[p*plane : (p+1)*plane]
		dyp := dy[p*oplane : (p+1)*oplane]
		clear(dxp)
		for i := 0; i < g.oh; i++ {
			for j := 0; j < g.ow; j++ {
				d := dyp[i*g.ow+j] / div
				for a := 0; a < k; a++ {
					row := dxp[(i*s+a)*g.w+j*s:]
					for b := range row[:k] {
						row[b] += d
					}
				}
			}
		}
	}
}

var _ gorgonia.Op = (*poolGradOp)(nil)
