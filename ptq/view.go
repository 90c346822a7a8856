package ptq

import (
	"fmt"

	"qat/layers"
	"qat/model"
	"qat/ops"
	"qat/quant"
)

// layer is a conv or linear node of a model seen in the domain of its
// weight quantizer: the folded weight w*sf[o] where its BatchNorm is
// folded, else w itself, as rows of inner weights per output channel.
type layer struct {
	index int // in the spec
	node  model.Node
	w     *layers.Param // [out, in/groups, k, k] or [out, in]
	b     *layers.Param // nil without a bias
	// Where the layer has a BatchNorm: gamma and beta, and whether the
	// weight quantizer sees it folded (sf not nil: the fold scales).
	bn          *ops.BatchNorm
	gamma, beta *layers.Param
	sf          []float32
	// in is the per-sample input shape; out the output channels; groups
	// (1 for linear) and inner the weights per output channel.
	in                  []int
	out, groups, inner  int
	kernel, stride, pad int
	outH, outW          int
}

// foldedDomain reports whether m's weight quantizers see a BatchNorm
// folded into its conv: always for a float model (the int8 export folds),
// and for a quantized model unless it keeps BN unfolded.
func foldedDomain(m *layers.Model) bool { return !m.Quantized() || m.Folded() }

// layerOf returns the view of node i of m, which must be a conv or
// linear node; in is its per-sample input shape. fold says whether its
// BatchNorm, if any, is folded into the weights (foldedDomain of the
// model whose quantizers are meant).
func layerOf(m *layers.Model, i int, in []int, fold bool) (*layer, error) {
	n := m.Spec.Nodes[i]
	l := &layer{index: i, node: n, in: in, out: n.Out, groups: 1, kernel: 1, stride: 1}
	if l.w = m.Param(n.Name + ".weight"); l.w == nil {
		return nil, fmt.Errorf("model %s: no param %s.weight", m.Spec.Name, n.Name)
	}
	l.b = m.Param(n.Name + ".bias")
	l.inner = len(l.w.Data) / n.Out
	if n.Op == model.OpConv {
		l.groups, l.kernel, l.stride, l.pad = n.EffectiveGroups(), n.Kernel, n.EffectiveStride(), n.Padding
		l.outH = (in[1]+2*l.pad-l.kernel)/l.stride + 1
		l.outW = (in[2]+2*l.pad-l.kernel)/l.stride + 1
	}
	if n.BN != "" {
		l.bn, l.gamma, l.beta = m.BatchNorm(n.BN), m.Param(n.BN+".weight"), m.Param(n.BN+".bias")
		if l.bn == nil || l.gamma == nil || l.beta == nil {
			return nil, fmt.Errorf("model %s: BatchNorm %s is missing", m.Spec.Name, n.BN)
		}
		if fold {
			l.sf = make([]float32, n.Out)
			l.refold()
		}
	}
	return l, nil
}

// refold recomputes the fold scales sf from the BatchNorm's gamma and
// running variance (quant.FoldScale, as training and export do).
func (l *layer) refold() {
	quant.FoldScale(l.sf, make([]float32, l.out), l.gamma.Data, l.bn.RunningVar, l.bn.Eps())
}

// weightLayers returns the view of every conv and linear node of m in
// graph order, BatchNorms folded as fold says.
func weightLayers(m *layers.Model, fold bool) ([]*layer, error) {
	shapes, err := m.Spec.Shapes()
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Spec.Name, err)
	}
	src, err := m.Spec.Sources()
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Spec.Name, err)
	}
	var out []*layer
	for i, n := range m.Spec.Nodes {
		if !n.Weighted() {
			continue
		}
		in := m.Spec.Input
		if j := src[i][0]; j >= 0 {
			in = shapes[j]
		}
		l, err := layerOf(m, i, in, fold)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// folded returns the weights the quantizer sees: w*sf[o] in float32 (as
// the graph's channel scaling and the exporter compute it), or a copy of
// w.
func (l *layer) folded() []float32 {
	w := append([]float32(nil), l.w.Data...)
	if l.sf != nil {
		for o := range l.out {
			for i := range w[o*l.inner : (o+1)*l.inner] {
				w[o*l.inner+i] *= l.sf[o]
			}
		}
	}
	return w
}

// positions is the number of rows one sample gives each group: output
// pixels of a conv, 1 for a linear layer.
func (l *layer) positions() int {
	if l.node.Op == model.OpConv {
		return l.outH * l.outW
	}
	return 1
}

// rows writes the input rows of group g of the batch x ([batch, in...])
// into dst, [batch*positions, inner] row-major: for a conv, the im2col
// patch (channels of group g, then kernel rows and columns, zero padded)
// of each output pixel, sample by sample, pixels row-major, which is the
// order of a weight row; for a linear layer the samples themselves.
func (l *layer) rows(dst, x []float32, batch, g int) {
	if l.node.Op == model.OpLinear {
		copy(dst, x[:batch*l.inner])
		return
	}
	c, h, w := l.in[0], l.in[1], l.in[2]
	cg, k := c/l.groups, l.kernel
	r := 0
	for s := range batch {
		img := x[s*c*h*w : (s+1)*c*h*w]
		for oy := range l.outH {
			for ox := range l.outW {
				row := dst[r*l.inner : (r+1)*l.inner]
				r++
				j := 0
				for ci := g * cg; ci < (g+1)*cg; ci++ {
					plane := img[ci*h*w : (ci+1)*h*w]
					for ky := range k {
						y := oy*l.stride - l.pad + ky
						for kx := range k {
							xx := ox*l.stride - l.pad + kx
							if y < 0 || y >= h || xx < 0 || xx >= w {
								row[j] = 0
							} else {
								row[j] = plane[y*w+xx]
							}
							j++
						}
					}
				}
			}
		}
	}
}

// weightQuantizer returns the layer's weight quantizer in m, or nil.
func weightQuantizer(m *layers.Model, l *layer) *layers.Quantizer {
	return m.Quantizer(l.node.Name + ".weight_fake_quant")
}

// channelParams returns the scale and zero point of output channel o
// under p (per tensor or per channel of axis 0).
func channelParams(p quant.Params, o int) (float32, int32) {
	if p.PerTensor() {
		return p.Scale[0], p.ZeroPoint[0]
	}
	return p.Scale[o], p.ZeroPoint[o]
}
