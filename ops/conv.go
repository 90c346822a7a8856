package ops

import (
	"fmt"
	"unsafe"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/gemm"
	"qat/internal/graphval"
	"qat/internal/par"
	"qat/internal/vadd"
)

// ConvConfig is the geometry of a Conv2d besides the kernel size, which
// comes from the weight's shape. The zero value is stride 1, no padding,
// one group.
type ConvConfig struct {
	// Stride is the step between output positions in both H and W. 0
	// means 1; negative is an error.
	Stride int
	// Padding is the number of zero pixels added on each side of H and W.
	// Negative is an error.
	Padding int
	// Groups splits the input and output channels into that many equal
	// groups (PyTorch's groups): the weight is [O, C/G, KH, KW] and output
	// channel o reads only the C/G input channels of group o/(O/G). C and
	// O must be multiples of it; G = C = O is a depthwise convolution. 0
	// means 1; negative is an error.
	Groups int
}

func (c ConvConfig) stride() int {
	if c.Stride == 0 {
		return 1
	}
	return c.Stride
}

func (c ConvConfig) groups() int {
	if c.Groups == 0 {
		return 1
	}
	return c.Groups
}

// Conv2d returns the convolution of x [N, C, H, W] with w [O, C/G, KH, KW]
// (G = cfg's groups), of shape [N, O, OH, OW], OH = (H+2P-KH)/S+1,
// OW = (W+2P-KW)/S+1. Both are float32 nodes of the same graph with known
// shapes; shape errors are reported here, not at run time. See the package
// doc for layout, padding, groups, gradients and buffers.
func Conv2d(x, w *gorgonia.Node, cfg ConvConfig) (*gorgonia.Node, error) {
	if x == nil || w == nil {
		return nil, fmt.Errorf("ops.Conv2d: nil input or weight node")
	}
	for _, n := range []struct {
		node *gorgonia.Node
		what string
	}{{x, "input"}, {w, "weight"}} {
		if dt := n.node.Dtype(); dt != tensor.Float32 {
			return nil, fmt.Errorf("ops.Conv2d: %s %v is %v, want float32", n.what, n.node, dt)
		}
	}
	if _, err := geometry(x.Shape(), w.Shape(), cfg); err != nil {
		return nil, fmt.Errorf("ops.Conv2d: %w", err)
	}
	y, err := gorgonia.ApplyOp(newConv(cfg), x, w)
	if err != nil {
		return nil, fmt.Errorf("ops.Conv2d: %w", err)
	}
	return y, nil
}

// geom is a checked convolution geometry.
type geom struct {
	n, c, h, w int // input
	o, kh, kw  int // weight (C/groups input channels per output)
	groups     int
	s, p       int
	oh, ow     int // output spatial size
}

func (g geom) ckk() int               { return g.c * g.kh * g.kw }
func (g geom) ohw() int               { return g.oh * g.ow }
func (g geom) inSize() int            { return g.c * g.h * g.w }
func (g geom) outShape() tensor.Shape { return tensor.Shape{g.n, g.o, g.oh, g.ow} }
func (g geom) inShape() tensor.Shape  { return tensor.Shape{g.n, g.c, g.h, g.w} }
func (g geom) weightShape() tensor.Shape {
	return tensor.Shape{g.o, g.c / g.groups, g.kh, g.kw}
}

// og is the number of output channels of a group, and gckk the length of
// a weight row, C/G*KH*KW: the rows of the im2col matrix one group reads.
func (g geom) og() int   { return g.o / g.groups }
func (g geom) gckk() int { return g.c / g.groups * g.kh * g.kw }

// padded returns, for stride 1 and padding, the geometry of the same
// convolution on the zero-padded input with no padding.
func (g geom) padded() (geom, bool) {
	if g.s != 1 || g.p == 0 {
		return geom{}, false
	}
	gp := g
	gp.h, gp.w, gp.p = g.h+2*g.p, g.w+2*g.p, 0
	return gp, true
}

// padLen is the length of the padded planes im2col and col2im use (0
// where they use none).
func (g geom) padLen() int {
	if gp, ok := g.padded(); ok {
		return gp.inSize()
	}
	return 0
}

// padPlanes writes the planes of x, of geometry g, zero-padded by g.p on
// every side, into pad (padPlane per channel).
func padPlanes(pad, x []float32, g geom) {
	hw, phw := g.h*g.w, (g.h+2*g.p)*(g.w+2*g.p)
	for c := range g.c {
		padPlane(pad[c*phw:(c+1)*phw], x[c*hw:(c+1)*hw], g.h, g.w, g.p)
	}
}

// direct reports whether x itself is the im2col matrix (1×1 kernel,
// stride 1, no padding).
func (g geom) direct() bool { return g.kh == 1 && g.kw == 1 && g.s == 1 && g.p == 0 }

// depthwise reports whether each output channel reads one input channel,
// its own (G = C = O, including C = O = 1).
func (g geom) depthwise() bool { return g.groups == g.c && g.groups == g.o }

func geometry(xs, ws tensor.Shape, cfg ConvConfig) (geom, error) {
	if cfg.Stride < 0 {
		return geom{}, fmt.Errorf("stride %d is negative", cfg.Stride)
	}
	if cfg.Padding < 0 {
		return geom{}, fmt.Errorf("padding %d is negative", cfg.Padding)
	}
	if cfg.Groups < 0 {
		return geom{}, fmt.Errorf("groups %d is negative", cfg.Groups)
	}
	if len(xs) != 4 {
		return geom{}, fmt.Errorf("input shape %v is %d-D, want 4-D [N, C, H, W]", xs, len(xs))
	}
	if len(ws) != 4 {
		return geom{}, fmt.Errorf("weight shape %v is %d-D, want 4-D [O, C, KH, KW]", ws, len(ws))
	}
	for _, s := range []tensor.Shape{xs, ws} {
		for _, d := range s {
			if d < 1 {
				return geom{}, fmt.Errorf("shape %v has an unknown or empty dimension", s)
			}
		}
	}
	g := geom{n: xs[0], c: xs[1], h: xs[2], w: xs[3], o: ws[0], kh: ws[2], kw: ws[3], groups: cfg.groups(), s: cfg.stride(), p: cfg.Padding}
	if ws[1]*g.groups != g.c {
		if g.groups == 1 {
			return geom{}, fmt.Errorf("channel mismatch: input %v has %d channels, weight %v has %d", xs, g.c, ws, ws[1])
		}
		return geom{}, fmt.Errorf("channel mismatch: input %v has %d channels, weight %v has %d per group, %d in %d groups", xs, g.c, ws, ws[1], ws[1]*g.groups, g.groups)
	}
	if g.o%g.groups != 0 {
		return geom{}, fmt.Errorf("weight %v has %d output channels, not a multiple of the %d groups", ws, g.o, g.groups)
	}
	if g.kh > g.h+2*g.p || g.kw > g.w+2*g.p {
		return geom{}, fmt.Errorf("kernel %dx%d is larger than the padded input %dx%d (input %v, padding %d)",
			g.kh, g.kw, g.h+2*g.p, g.w+2*g.p, xs, g.p)
	}
	g.oh = (g.h+2*g.p-g.kh)/g.s + 1
	g.ow = (g.w+2*g.p-g.kw)/g.s + 1
	return g, nil
}

// scratch is an op's reusable buffer.
type scratch struct{ buf []float32 }

func (s *scratch) get(n int) []float32 {
	if cap(s.buf) < n {
		s.buf = make([]float32, n)
	}
	return s.buf[:n]
}

// im2col returns, from s, the buffers im2col and col2im take for
// geometry g: the column matrix of g.ckk()*g.ohw() floats and the padded
// planes of g.padLen().
func (s *scratch) im2col(g geom) (col, pad []float32) {
	n := g.ckk() * g.ohw()
	buf := s.get(n + g.padLen())
	return buf[:n], buf[n:]
}

// scratches holds one scratch per goroutine of a loop over samples.
type scratches []scratch

// grow makes room for n goroutines, before they start.
func (s *scratches) grow(n int) {
	if len(*s) < n {
		*s = append(*s, make([]scratch, n-len(*s))...)
	}
}

// convOp is the forward convolution: inputs x, w.
type convOp struct {
	base
	id   uint64
	cfg  ConvConfig
	cols scratches // per goroutine: one sample's im2col matrix, or the depthwise loops' padded plane
	out  graphval.Buffer
}

func newConv(cfg ConvConfig) *convOp {
	id := graphval.NewID()
	if g := cfg.groups(); g > 1 {
		return &convOp{base: named("Conv2d(s=%d,p=%d,g=%d)#%d", cfg.stride(), cfg.Padding, g, id), id: id, cfg: cfg}
	}
	return &convOp{base: named("Conv2d(s=%d,p=%d)#%d", cfg.stride(), cfg.Padding, id), id: id, cfg: cfg}
}

func (op *convOp) Arity() int { return 2 }
func (op *convOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeImg, graphval.TypeImg, graphval.TypeImg)
}
func (op *convOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	xs, ws, err := shapes2(ds)
	if err != nil {
		return nil, err
	}
	g, err := geometry(xs, ws, op.cfg)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return g.outShape(), nil
}

// convInputs checks that op got its number of values and returns the
// input and weight, the first two, with their geometry under cfg. Errors
// name op.
func convInputs(op gorgonia.Op, vals []gorgonia.Value, cfg ConvConfig) (x, w []float32, g geom, err error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, nil, g, err
	}
	x, xs, err := graphval.ReadFloat32s(op, vals[0], "input")
	if err != nil {
		return nil, nil, g, err
	}
	w, ws, err := graphval.ReadFloat32s(op, vals[1], "weight")
	if err != nil {
		return nil, nil, g, err
	}
	if g, err = geometry(xs, ws, cfg); err != nil {
		return nil, nil, g, fmt.Errorf("%v: %w", op, err)
	}
	return x, w, g, nil
}

func (op *convOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	x, w, g, err := convInputs(op, vals, op.cfg)
	if err != nil {
		return nil, err
	}
	yv, y := op.out.Dense(g.outShape())
	if g.direct3x3() {
		depthwise3x3(y, x, w, g, &op.cols)
	} else {
		op.forwardGEMM(y, x, w, g)
	}
	return yv, nil
}

// forwardGEMM writes the convolution y of x with w, of geometry g: per
// sample, im2col and one GEMM per group.
func (op *convOp) forwardGEMM(y, x, w []float32, g geom) {
	gk, og, ohw, in, out := g.gckk(), g.og(), g.ohw(), g.inSize(), g.o*g.ohw()
	workers := sampleWorkers(g.n, out*gk)
	op.cols.grow(workers)
	par.For(g.n, workers, func(i, lo, hi int) {
		var col, pad []float32
		if !g.direct() {
			col, pad = op.cols[i].im2col(g)
		}
		for n := lo; n < hi; n++ {
			xn, yn := x[n*in:(n+1)*in], y[n*out:(n+1)*out]
			if g.direct() {
				col = xn
			} else {
				im2col(col, xn, g, pad)
			}
			// Group j: y[n] rows [O/G, OH*OW] = w rows [O/G, C/G*KK] ·
			// col rows [C/G*KK, OH*OW], each block of rows starting at
			// the group's first channel.
			for j := range g.groups {
				gemm.Sgemm(yn[j*og*ohw:], ohw, false, false, og, ohw, gk, 1, w[j*og*gk:], gk, col[j*gk*ohw:], ohw, 0)
			}
		}
	})
}

// DiffWRT: the output is differentiable with respect to x and w.
func (op *convOp) DiffWRT(inputs int) []bool { return []bool{true, true} }

// SymDiff returns dX = convGradX(x, w, dY) and dW = convGradW(x, w, dY).
func (op *convOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("%v: %d inputs, want 2", op, len(inputs))
	}
	x, w := inputs[0], inputs[1]
	gx, err := gorgonia.ApplyOp(newConvGrad(op, false), x, w, grad)
	if err != nil {
		return nil, fmt.Errorf("%v: input gradient: %w", op, err)
	}
	gw, err := gorgonia.ApplyOp(newConvGrad(op, true), x, w, grad)
	if err != nil {
		return nil, fmt.Errorf("%v: weight gradient: %w", op, err)
	}
	return gorgonia.Nodes{gx, gw}, nil
}

var _ gorgonia.SDOp = (*convOp)(nil)

// convGradOp is one gradient of a convOp: inputs x, w, dY; output dW (shape
// of w) when wrtW, else dX (shape of x). Its scratch holds, per
// goroutine, one sample's im2col rows (dW) or column gradient (dX), or
// the depthwise loops' padded plane.
type convGradOp struct {
	base
	fwd  *convOp
	wrtW bool
	cols scratches
	out  graphval.Buffer
}

func newConvGrad(fwd *convOp, wrtW bool) *convGradOp {
	wrt := "X"
	if wrtW {
		wrt = "W"
	}
	return &convGradOp{base: named("Conv2dGrad%s#%d", wrt, fwd.id), fwd: fwd, wrtW: wrtW}
}

func (op *convGradOp) Arity() int { return 3 }
func (op *convGradOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeImg, graphval.TypeImg, graphval.TypeImg, graphval.TypeImg)
}
func (op *convGradOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	xs, ws, err := shapes2(ds)
	if err != nil {
		return nil, err
	}
	if op.wrtW {
		return ws, nil
	}
	return xs, nil
}

func (op *convGradOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	x, w, g, err := convInputs(op, vals, op.fwd.cfg)
	if err != nil {
		return nil, err
	}
	dy, dys, err := graphval.ReadFloat32s(op, vals[2], "output gradient")
	if err != nil {
		return nil, err
	}
	if !dys.Eq(g.outShape()) {
		return nil, fmt.Errorf("%v: output gradient has shape %v, want %v", op, dys, g.outShape())
	}
	if op.wrtW {
		return op.gradW(x, dy, g), nil
	}
	return op.gradX(w, dy, g), nil
}

// gradW returns dW for input x and output gradient dy of geometry g.
func (op *convGradOp) gradW(x, dy []float32, g geom) gorgonia.Value {
	dv, dw := op.out.Dense(g.weightShape())
	if g.direct3x3() {
		depthwise3x3GradW(dw, x, dy, g, &op.cols)
	} else {
		op.gradWGEMM(dw, x, dy, g)
	}
	return dv
}

// gradWGEMM writes dW for input x and output gradient dy of geometry g:
// each group's rows of dW are the sum over samples, in sample order, of
// the products dY[n] · col^T of its channels.
func (op *convGradOp) gradWGEMM(dw, x, dy []float32, g geom) {
	clear(dw) // the samples' products are added to it
	// The samples' products are summed into dW in sample order, so
	// the goroutines split dW's columns, not the samples: each sums
	// every sample's product into its blocks of a group's columns, each
	// from a multiple of gemm.BlockAlign past the group's first column
	// (computed as in the whole product), with the im2col rows of the
	// channels the block covers. A goroutine's range of blocks may span
	// groups: it takes them group by group.
	gk := g.gckk()
	blocks := (gk + gemm.BlockAlign - 1) / gemm.BlockAlign // per group
	units := g.groups * blocks
	workers := min(units, sampleWorkers(g.n, g.o*gk*g.ohw()))
	op.cols.grow(workers)
	par.For(units, workers, func(i, lo, hi int) {
		for u := lo; u < hi; {
			grp := u / blocks
			end := min(hi, (grp+1)*blocks)
			j0, j1 := (u-grp*blocks)*gemm.BlockAlign, min((end-grp*blocks)*gemm.BlockAlign, gk)
			op.gradWBlock(dw, x, dy, g, &op.cols[i], grp, j0, j1)
			u = end
		}
	})
}

// gradWBlock adds every sample's product into columns [j0, j1) of the
// rows of dW of group grp, with sc for scratch.
func (op *convGradOp) gradWBlock(dw, x, dy []float32, g geom, sc *scratch, grp, j0, j1 int) {
	gk, og, ohw, in, out := g.gckk(), g.og(), g.ohw(), g.inSize(), g.o*g.ohw()
	kk, hw := g.kh*g.kw, g.h*g.w
	first := grp * (g.c / g.groups)           // the group's first channel
	c0, c1 := first+j0/kk, first+(j1+kk-1)/kk // channels of columns j0..j1
	gc := g
	gc.c = c1 - c0
	var col, pad []float32
	if !g.direct() {
		col, pad = sc.im2col(gc)
	}
	rows := col
	for n := 0; n < g.n; n++ {
		xc := x[n*in+c0*hw : n*in+c1*hw]
		if g.direct() {
			rows = xc
		} else {
			im2col(col, xc, gc, pad)
		}
		// dW[group rows, j0:j1] [O/G, j1-j0] += dY[n] group rows [O/G, OH*OW] · col[j0:j1]^T [OH*OW, j1-j0]
		gemm.Sgemm(dw[grp*og*gk+j0:], gk, false, true, og, j1-j0, ohw, 1, dy[n*out+grp*og*ohw:], ohw, rows[(j0-(c0-first)*kk)*ohw:], ohw, 1)
	}
}

// gradX returns dX for weight w and output gradient dy of geometry g.
func (op *convGradOp) gradX(w, dy []float32, g geom) gorgonia.Value {
	dv, dx := op.out.Dense(g.inShape())
	if g.direct3x3() {
		depthwise3x3GradX(dx, w, dy, g, &op.cols)
	} else {
		op.gradXGEMM(dx, w, dy, g)
	}
	return dv
}

// gradXGEMM writes dX for weight w and output gradient dy of geometry g:
// per sample, one GEMM per group into the column gradient, then col2im.
func (op *convGradOp) gradXGEMM(dx, w, dy []float32, g geom) {
	gk, og, ohw, in, out := g.gckk(), g.og(), g.ohw(), g.inSize(), g.o*g.ohw()
	workers := sampleWorkers(g.n, out*gk)
	op.cols.grow(workers)
	par.For(g.n, workers, func(i, lo, hi int) {
		var col, pad []float32
		if !g.direct() {
			col, pad = op.cols[i].im2col(g)
		}
		for n := lo; n < hi; n++ {
			dxn, dyn := dx[n*in:(n+1)*in], dy[n*out:(n+1)*out]
			dst := col // x's column gradient is dX itself when x is the column matrix
			if g.direct() {
				dst = dxn
			}
			// Group j: colGrad rows [C/G*KK, OH*OW] = (w rows)^T
			// [C/G*KK, O/G] · dY[n] rows [O/G, OH*OW].
			for j := range g.groups {
				gemm.Sgemm(dst[j*gk*ohw:], ohw, true, false, gk, ohw, og, 1, w[j*og*gk:], gk, dyn[j*og*ohw:], ohw, 0)
			}
			if !g.direct() {
				clear(dxn) // col2im adds into it
				col2im(dxn, col, g, pad)
			}
		}
	})
}

var _ gorgonia.Op = (*convGradOp)(nil)

// validRange returns the output columns [lo, hi) whose input column
// o*s+k-p lies in [0, size) for kernel offset k.
func validRange(k, size, outSize, s, p int) (lo, hi int) {
	// o*s >= p-k  and  o*s <= size-1+p-k
	if d := p - k; d > 0 {
		lo = (d + s - 1) / s
	}
	if d := size - 1 + p - k; d < 0 {
		hi = 0
	} else {
		hi = d/s + 1
	}
	if hi > outSize {
		hi = outSize
	}
	if lo > hi {
		lo = hi
	}
	return lo, hi
}

// im2col fills col [C*KH*KW, OH*OW] from one sample x [C, H, W]: row
// (c*KH+kh)*KW+kw, column oh*OW+ow holds x[c, oh*S+kh-P, ow*S+kw-P], or 0
// where that falls in the padding.
//
// With stride 1 and padding, x is first copied into the zero-padded
// planes pad (len g.padLen()), whose im2col with no padding is the same
// matrix: short runs then move as blocks rather than through copy calls.
func im2col(col, x []float32, g geom, pad []float32) {
	if g.s == 1 && g.p == 0 {
		im2colS1(col, x, g)
		return
	}
	if gp, ok := g.padded(); ok {
		padPlanes(pad, x, g)
		im2colS1(col, pad, gp)
		return
	}
	ohw := g.ohw()
	r := 0
	for c := 0; c < g.c; c++ {
		xc := x[c*g.h*g.w : (c+1)*g.h*g.w]
		for kh := 0; kh < g.kh; kh++ {
			hLo, hHi := validRange(kh, g.h, g.oh, g.s, g.p)
			for kw := 0; kw < g.kw; kw++ {
				row := col[r*ohw : (r+1)*ohw]
				r++
				wLo, wHi := validRange(kw, g.w, g.ow, g.s, g.p)
				clear(row[:hLo*g.ow])
				clear(row[hHi*g.ow:])
				for oh := hLo; oh < hHi; oh++ {
					dst := row[oh*g.ow : (oh+1)*g.ow]
					clear(dst[:wLo])
					clear(dst[wHi:])
					if wLo >= wHi {
						continue
					}
					src := xc[(oh*g.s+kh-g.p)*g.w:]
					iw := wLo*g.s + kw - g.p
					if g.s == 1 {
						copy(dst[wLo:wHi], src[iw:iw+wHi-wLo])
						continue
					}
					for ow := wLo; ow < wHi; ow++ {
						dst[ow] = src[iw]
						iw += g.s
					}
				}
			}
		}
	}
}

// im2colS1 is im2col for stride 1 and no padding: every row of col is
// OH runs of OW consecutive input pixels. The runs are too short for a
// call of copy to pay; for 8 <= OW <= 32 they are copied as one to four
// blocks of eight floats (the last block ending at the run's end, so
// overlapping the one before it when 8 does not divide OW), each block as
// four 8-byte moves through unsafe pointers (see im2colBlocks); narrower
// runs are copied element by element, wider ones by copy.
func im2colS1(col, x []float32, g geom) {
	if g.ow >= 8 && g.ow <= 32 {
		im2colBlocks(col, x, g)
		return
	}
	ohw, hw, w, ow := g.ohw(), g.h*g.w, g.w, g.ow
	r := 0
	for c := 0; c < g.c; c++ {
		xc := x[c*hw : (c+1)*hw]
		for kh := 0; kh < g.kh; kh++ {
			for kw := 0; kw < g.kw; kw++ {
				row := col[r*ohw : (r+1)*ohw]
				r++
				src := xc[kh*w+kw:]
				for oh := 0; oh < g.oh; oh++ {
					d, s := row[oh*ow:oh*ow+ow], src[oh*w:oh*w+ow]
					if ow > 32 {
						copy(d, s)
						continue
					}
					for j, v := range s {
						d[j] = v
					}
				}
			}
		}
	}
}

// im2colBlocks is im2colS1 for 8 <= OW <= 32. Every pointer it forms
// lies inside col or inside one channel of x: with stride 1 and no
// padding, OH = H-KH+1 and OW = W-KW+1, so the run of output row oh for
// tap (kh, kw) is x[c][(oh+kh)*W+kw : (oh+kh)*W+kw+OW], within the
// channel, and col is written row after row to its end; both are checked
// before any pointer is formed. Positions advance as byte offsets, and a
// pointer is only formed for a block that is copied.
func im2colBlocks(col, x []float32, g geom) {
	hw := g.h * g.w
	if g.oh+g.kh-1 > g.h || g.ow+g.kw-1 > g.w || len(col) < g.ckk()*g.ohw() || len(x) < g.c*hw {
		panic(fmt.Sprintf("ops: im2col geometry %+v for %d and %d floats", g, len(col), len(x)))
	}
	w := uintptr(g.w) * 4
	run := uintptr(g.ow) * 4
	last := run - 32 // offset of a run's last block
	cp := unsafe.Pointer(unsafe.SliceData(col))
	var d uintptr // offset in col of the next run
	for c := 0; c < g.c; c++ {
		xc := unsafe.Pointer(&x[c*hw])
		for kh := 0; kh < g.kh; kh++ {
			for kw := 0; kw < g.kw; kw++ {
				s := uintptr(kh*g.w+kw) * 4 // offset in the channel of the run
				switch (g.ow + 7) / 8 {
				case 1:
					for range g.oh {
						move8(unsafe.Add(cp, d), unsafe.Add(xc, s))
						d, s = d+run, s+w
					}
				case 2:
					for range g.oh {
						move8(unsafe.Add(cp, d), unsafe.Add(xc, s))
						move8(unsafe.Add(cp, d+last), unsafe.Add(xc, s+last))
						d, s = d+run, s+w
					}
				case 3:
					for range g.oh {
						move8(unsafe.Add(cp, d), unsafe.Add(xc, s))
						move8(unsafe.Add(cp, d+32), unsafe.Add(xc, s+32))
						move8(unsafe.Add(cp, d+last), unsafe.Add(xc, s+last))
						d, s = d+run, s+w
					}
				default:
					for range g.oh {
						move8(unsafe.Add(cp, d), unsafe.Add(xc, s))
						move8(unsafe.Add(cp, d+32), unsafe.Add(xc, s+32))
						move8(unsafe.Add(cp, d+64), unsafe.Add(xc, s+64))
						move8(unsafe.Add(cp, d+last), unsafe.Add(xc, s+last))
						d, s = d+run, s+w
					}
				}
			}
		}
	}
}

// move8 copies the 8 floats (32 bytes) at src to dst: four 8-byte loads,
// then four stores, which the compiler keeps in registers (an array
// assignment would call memmove).
func move8(dst, src unsafe.Pointer) {
	*(*[4]uint64)(dst) = [4]uint64{*(*uint64)(src), *(*uint64)(unsafe.Add(src, 8)),
		*(*uint64)(unsafe.Add(src, 16)), *(*uint64)(unsafe.Add(src, 24))}
}

// col2im adds the column gradient col [C*KH*KW, OH*OW] into one sample's
// dx [C, H, W], the adjoint of im2col: entries that im2col took from the
// padding are dropped.
//
// With stride 1 and padding, it adds into the zero-padded planes pad (len
// g.padLen()) with no padding, then adds their interior into dx: every
// element of dx receives the same terms in the same order, so the sums
// are the same bits.
func col2im(dx, col []float32, g geom, pad []float32) {
	if g.s == 1 && g.p == 0 {
		col2imS1(dx, col, g)
		return
	}
	if gp, ok := g.padded(); ok {
		clear(pad)
		col2imS1(pad, col, gp)
		pw, ph := g.w+2*g.p, g.h+2*g.p
		for c := range g.c {
			vadd.Rows(dx[c*g.h*g.w:], g.w, pad[(c*ph+g.p)*pw+g.p:], pw, g.h, g.w)
		}
		return
	}
	ohw := g.ohw()
	r := 0
	for c := 0; c < g.c; c++ {
		dc := dx[c*g.h*g.w : (c+1)*g.h*g.w]
		for kh := 0; kh < g.kh; kh++ {
			hLo, hHi := validRange(kh, g.h, g.oh, g.s, g.p)
			for kw := 0; kw < g.kw; kw++ {
				row := col[r*ohw : (r+1)*ohw]
				r++
				wLo, wHi := validRange(kw, g.w, g.ow, g.s, g.p)
				if wLo >= wHi {
					continue
				}
				for oh := hLo; oh < hHi; oh++ {
					src := row[oh*g.ow+wLo : oh*g.ow+wHi]
					dst := dc[(oh*g.s+kh-g.p)*g.w:]
					iw := wLo*g.s + kw - g.p
					if g.s == 1 {
						dst = dst[iw : iw+len(src)]
						for i, v := range src {
							dst[i] += v
						}
						continue
					}
					for _, v := range src {
						dst[iw] += v
						iw += g.s
					}
				}
			}
		}
	}
}

// col2imS1 is col2im for stride 1 and no padding, adding in the same
// order (row by row of col, each run left to right): for each row of col,
// the oh runs of ow values go into dx with one vadd.Rows call.
func col2imS1(dx, col []float32, g geom) {
	hw, w, ohw := g.h*g.w, g.w, g.ohw()
	ci := 0
	for c := 0; c < g.c; c++ {
		for kh := 0; kh < g.kh; kh++ {
			for kw := 0; kw < g.kw; kw++ {
				vadd.Rows(dx[c*hw+kh*w+kw:], w, col[ci:ci+ohw], g.ow, g.oh, g.ow)
				ci += ohw
			}
		}
	}
}

// shapes2 returns the shapes of x and w given to a conv op's InferShape.
func shapes2(ds []gorgonia.DimSizer) (xs, ws tensor.Shape, err error) {
	if xs, err = graphval.ShapeArg(ds, 0); err != nil {
		return nil, nil, err
	}
	if ws, err = graphval.ShapeArg(ds, 1); err != nil {
		return nil, nil, err
	}
	return xs, ws, nil
}

// minSampleWork is the fewest multiply-adds worth a goroutine of their
// own in a loop over samples: waking an idle core costs tens of
// microseconds on a VM (as for gemm.SgemmParallel).
const minSampleWork = 1 << 20

// sampleWorkers returns the goroutines to split a loop over n samples of
// work multiply-adds each into: at most par.Threads(), n, and one per
// minSampleWork multiply-adds.
func sampleWorkers(n, work int) int { return par.Workers(n, work, minSampleWork) }
