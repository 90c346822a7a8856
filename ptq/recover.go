package ptq

import (
	"fmt"
	"math"

	"qat/data"
	"qat/internal/gemm"
	"qat/layers"
	"qat/model"
	"qat/quant"
	"qat/train"
)

// stats are the input statistics of one layer over the calibration rows,
// per group: sums of the rows from the quantized model (x_q) and from the
// float one (x) and, for AdaRound, the products sum x_q x_q^T, sum x_q d^T
// and sum d d^T with d = x_q - x, [inner, inner] row-major, accumulated
// per batch in float32 (the GEMM) and across batches in float64.
type stats struct {
	rows       int // per group
	sumQ, sumF [][]float64
	g, e, f    [][]float64
	grams      bool
	// per-batch buffers
	rq, rf, d, tmp []float32
}

func newStats(l *layer, grams bool) *stats {
	s := &stats{grams: grams}
	n := l.inner
	for range l.groups {
		s.sumQ = append(s.sumQ, make([]float64, n))
		s.sumF = append(s.sumF, make([]float64, n))
		if grams {
			s.g = append(s.g, make([]float64, n*n))
			s.e = append(s.e, make([]float64, n*n))
			s.f = append(s.f, make([]float64, n*n))
		}
	}
	if grams {
		s.tmp = make([]float32, n*n)
	}
	return s
}

// add accumulates the inputs of a batch of batch samples, xq from the
// quantized model and xf from the float one.
func (s *stats) add(l *layer, xq, xf []float32, batch int) {
	n, r := l.inner, batch*l.positions()
	if len(s.rq) < r*n {
		s.rq, s.rf, s.d = make([]float32, r*n), make([]float32, r*n), make([]float32, r*n)
	}
	rq, rf, d := s.rq[:r*n], s.rf[:r*n], s.d[:r*n]
	threads := layers.Threads()
	for g := range l.groups {
		l.rows(rq, xq, batch, g)
		l.rows(rf, xf, batch, g)
		sq, sf := s.sumQ[g], s.sumF[g]
		for i := range r {
			for j := range n {
				a, b := rq[i*n+j], rf[i*n+j]
				sq[j] += float64(a)
				sf[j] += float64(b)
				d[i*n+j] = a - b
			}
		}
		if !s.grams {
			continue
		}
		for _, p := range []struct {
			acc  []float64
			a, b []float32
		}{{s.g[g], rq, rq}, {s.e[g], rq, d}, {s.f[g], d, d}} {
			gemm.SgemmParallel(s.tmp, n, true, false, n, n, r, 1, p.a, n, p.b, n, 0, threads)
			for i, v := range s.tmp {
				p.acc[i] += float64(v)
			}
		}
	}
	s.rows += r
}

// runner runs a model's evaluation graph (the float fake-quant simulation
// for a quantized model) on calibration batches, one graph per batch
// size.
type runner struct {
	m      *layers.Model
	graphs map[int]*layers.Graph
	labels []int
}

func (r *runner) run(ds *data.Dataset, idx []int, norm model.Norm) (*layers.Graph, error) {
	gr, ok := r.graphs[len(idx)]
	if !ok {
		var err error
		if gr, err = r.m.NewGraph(len(idx), layers.Eval); err != nil {
			return nil, err
		}
		r.graphs[len(idx)] = gr
	}
	if len(r.labels) < len(idx) {
		r.labels = make([]int, len(idx))
	}
	y := r.labels[:len(idx)]
	ds.Fill(gr.Input(), y, idx, norm)
	if err := gr.Run(y); err != nil {
		return nil, fmt.Errorf("calibration run on %s: %w", ds.Name, err)
	}
	return gr, nil
}

// recoverLayers applies AdaRound and bias correction, as opt selects, to
// every conv or linear layer of m that has a weight quantizer, in graph
// order, each on statistics gathered with the layers before it done; ref
// is m's float copy.
func recoverLayers(m, ref *layers.Model, ds *data.Dataset, cfg train.CalibrateConfig, opt layers.PTQConfig) ([]LayerReport, error) {
	batches, err := calibrationBatches(ds, cfg)
	if err != nil {
		return nil, err
	}
	fold := foldedDomain(m)
	qls, err := weightLayers(m, fold)
	if err != nil {
		return nil, err
	}
	fls, err := weightLayers(ref, fold)
	if err != nil {
		return nil, err
	}
	rq := &runner{m: m, graphs: map[int]*layers.Graph{}}
	rf := &runner{m: ref, graphs: map[int]*layers.Graph{}}
	var out []LayerReport
	for k, ql := range qls {
		wq := weightQuantizer(m, ql)
		if wq == nil {
			continue
		}
		p, ok := wq.Params()
		if !ok {
			return out, fmt.Errorf("quantizer %s has no params", wq.Name)
		}
		if !p.PerTensor() && p.Axis != 0 {
			return out, fmt.Errorf("quantizer %s is per channel of axis %d: want the output channel, axis 0", wq.Name, p.Axis)
		}
		st := newStats(ql, opt.AdaRound != nil)
		for _, idx := range batches {
			gq, err := rq.run(ds, idx, cfg.Norm)
			if err != nil {
				return out, err
			}
			gf, err := rf.run(ds, idx, cfg.Norm)
			if err != nil {
				return out, err
			}
			xq, err := gq.NodeInput(ql.index)
			if err != nil {
				return out, err
			}
			xf, err := gf.NodeInput(ql.index)
			if err != nil {
				return out, err
			}
			st.add(ql, xq, xf, len(idx))
		}
		rep := LayerReport{Name: ql.node.Name, Rows: st.rows}
		if opt.AdaRound != nil {
			if err := adaroundLayer(ql, fls[k], st, p, opt.AdaRound.EffectiveIters(), &rep); err != nil {
				return out, fmt.Errorf("adaround %s: %w", ql.node.Name, err)
			}
		}
		if opt.BiasCorrection {
			if err := correctBias(ql, fls[k], st, p, &rep); err != nil {
				return out, fmt.Errorf("bias correction %s: %w", ql.node.Name, err)
			}
		}
		out = append(out, rep)
	}
	return out, nil
}

// correctBias subtracts from the output of quantized layer q the mean
// error E[W_q x_q] - E[W x] of each output channel over the statistics'
// rows, W_q being the quantized weights q applies now (params p) and W
// the float layer f's: from the folded BN's beta, or for an unfolded BN by
// adding it to the running mean (which the BN subtracts before scaling),
// or from the bias. A layer with neither bias nor BN is left alone, and
// rep says so.
func correctBias(q, f *layer, st *stats, p quant.Params, rep *LayerReport) error {
	shift := meanShift(q, f, st, p)
	for _, v := range shift {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("mean output error %v is not finite", v)
		}
	}
	var dst []float32
	sign := -1.0
	switch {
	case q.sf != nil:
		dst = q.beta.Data
	case q.bn != nil:
		dst, sign = q.bn.RunningMean, 1
	case q.b != nil:
		dst = q.b.Data
	default:
		rep.Skipped = "bias correction: no bias or BatchNorm to correct"
		return nil
	}
	for o, v := range shift {
		dst[o] = float32(float64(dst[o]) + sign*v)
		rep.BiasShift = math.Max(rep.BiasShift, math.Abs(v))
	}
	return nil
}

// meanShift returns E[W_q x_q] - E[W x] per output channel of quantized
// layer q (params p) and float layer f over the statistics' rows.
func meanShift(q, f *layer, st *stats, p quant.Params) []float64 {
	wq := q.folded()
	quant.FakeQuantize(wq, wq, []int{q.out, q.inner}, p)
	wf := f.folded()
	shift := make([]float64, q.out)
	per := q.out / q.groups
	for o := range q.out {
		g := o / per
		var a, b float64
		for j := range q.inner {
			a += float64(wq[o*q.inner+j]) * st.sumQ[g][j]
			b += float64(wf[o*q.inner+j]) * st.sumF[g][j]
		}
		shift[o] = (a - b) / float64(st.rows)
	}
	return shift
}
