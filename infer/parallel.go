package infer

import (
	"fmt"
	"sync"

	"qat/internal/par"
)

// Parallel runs a Net on batches split by samples across goroutines, one
// Runner each. Every sample's codes depend on that sample alone (the
// arithmetic is exact integer arithmetic and per-element requantization,
// see the package doc), so the output is that of one Runner on the whole
// batch, bit for bit, for every thread count. Like a Runner, a Parallel
// owns its buffers and must not be used by two goroutines at once.
type Parallel struct {
	net     *Net
	batch   int
	runners []*Runner
	out     []uint8
	fout    []float32 // RunFloat's outputs
}

// NewParallel returns a Parallel for batches of up to batch samples on up
// to threads goroutines (the calling one included), each Runner taking
// an equal share of the batch.
func (n *Net) NewParallel(batch, threads int) *Parallel {
	if batch < 1 || threads < 1 {
		panic(fmt.Sprintf("infer: NewParallel(%d, %d)", batch, threads))
	}
	threads = min(threads, batch)
	p := &Parallel{net: n, batch: batch, out: make([]uint8, batch*n.classes), fout: make([]float32, batch*n.classes)}
	per := (batch + threads - 1) / threads
	for range threads {
		p.runners = append(p.runners, n.NewRunner(per))
	}
	return p
}

// Batch returns the largest batch p takes.
func (p *Parallel) Batch() int { return p.batch }

// Run runs the Net on whole samples of pixels (NCHW, values 0..255, as
// Runner.Pixels takes them) and returns their output codes, [samples,
// classes] in sample order, owned by p until its next run. The samples
// are cut into equal contiguous shares, one per Runner.
func (p *Parallel) Run(pixels []uint8) []uint8 {
	in := p.net.inLen
	b, classes := p.samples(pixels), p.net.classes
	par.For(b, len(p.runners), func(i, lo, hi int) {
		r := p.runners[i]
		r.Pixels(pixels[lo*in : hi*in])
		copy(p.out[lo*classes:hi*classes], r.Run(hi-lo))
	})
	return p.out[:b*classes]
}

// RunFloat is Run returning the float32 outputs of each sample, as
// Runner.RunFloat: the logits of a Net with float outputs, else the
// dequantized output codes. They are owned by p until its next run.
func (p *Parallel) RunFloat(pixels []uint8) []float32 {
	b := p.samples(pixels)
	classes := p.net.classes
	par.For(b, len(p.runners), func(i, lo, hi int) {
		r := p.runners[i]
		r.Pixels(pixels[lo*p.net.inLen : hi*p.net.inLen])
		copy(p.fout[lo*classes:hi*classes], r.RunFloat(hi-lo))
	})
	return p.fout[:b*classes]
}

// samples checks that pixels holds 1 to p.Batch() whole samples and
// returns their number.
func (p *Parallel) samples(pixels []uint8) int {
	in := p.net.inLen
	if len(pixels)%in != 0 || len(pixels)/in > p.batch || len(pixels) == 0 {
		panic(fmt.Sprintf("infer: %d pixels is not 1 to %d samples of %d", len(pixels), p.batch, in))
	}
	return len(pixels) / in
}

// layerPool holds the Layers RunParallel lends its goroutines: their
// buffers are kept from call to call, their op is set for each call.
var layerPool = sync.Pool{New: func() any { return new(Layer) }}

// RunParallel is Run with the batch split by samples into equal
// contiguous shares across up to threads goroutines (the calling one
// included; l runs the first share, pooled Layers the others). Every
// sample's codes depend on
// that sample alone, so dst is what Run writes, bit for bit.
func (l *Layer) RunParallel(dst, src []uint8, batch, threads int) {
	nin, nout := size(l.op.in), size(l.op.out)
	if len(src) != batch*nin || len(dst) != batch*nout {
		panic(fmt.Sprintf("infer: Layer.RunParallel with %d inputs and %d outputs, want %d and %d", len(src), len(dst), batch*nin, batch*nout))
	}
	par.For(batch, max(1, min(threads, batch)), func(i, lo, hi int) {
		w := l
		if i > 0 {
			w = layerPool.Get().(*Layer)
			w.op, w.inCHW = l.op, l.inCHW
			defer func() {
				w.op, w.inCHW = nil, nil
				layerPool.Put(w)
			}()
		}
		w.Run(dst[lo*nout:hi*nout], src[lo*nin:hi*nin], hi-lo)
	})
}
