package ptq

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"qat/layers"
	"qat/model"
)

// CLE's iteration: passes over the pairs until no scale differs from 1 by
// more than cleTol, at most cleMaxPasses passes.
const (
	cleTol       = 1e-6
	cleMaxPasses = 1000
)

// ErrNoPair is wrapped by Equalize's error for a model without any pair
// of layers it can equalize.
var ErrNoPair = errors.New("no equalizable pair of layers")

// CLEReport is what Equalize did.
type CLEReport struct {
	// Pairs are the equalized pairs, "first->second".
	Pairs []string `json:"pairs"`
	// Skipped are the layers whose output could not be equalized with a
	// next layer, each with the reason.
	Skipped []string `json:"skipped,omitempty"`
	// Passes is how many passes over the pairs ran; MaxStep is the
	// largest |s - 1| of the last one (below 1e-6 once converged).
	Passes  int     `json:"passes"`
	MaxStep float64 `json:"max_step"`
}

// pair is two layers whose weight ranges can be equalized: first's output
// channel c reaches only second, through channel-wise positively
// homogeneous nodes, as second's input channel c, which is spatial
// consecutive inputs of second (1 for a conv).
type pair struct {
	first, second *layer
	spatial       int
}

// Equalize applies cross-layer equalization (Nagel et al. 2019, section
// 4.1) to m, a float model or a quantized one not yet calibrated: for
// every pair of conv or linear layers where the first's output feeds only
// the second, through nothing but max or average pooling, ReLU and
// flatten nodes (a fused activation of the first that is ReLU or none:
// ReLU6 is not positively homogeneous, and branches change more than one
// consumer), output channel c of the first is divided by s_c and input
// channel c of the second multiplied by it, with s_c = sqrt(r1_c*r2_c)/r2_c
// and r the per-channel maxima of |w| of the weights the quantizers see
// (BN folded: w*gamma/sqrt(var+eps)). After that, both ranges are
// sqrt(r1_c*r2_c). A first layer with BatchNorm is scaled through its
// gamma and beta, which scales its folded weight and bias exactly; one
// without through its weight rows and bias. Channels with a zero range
// keep s_c = 1. The passes over all pairs repeat until every s_c is
// within 1e-6 of 1, since a layer can be in two pairs. The model's float
// function is unchanged up to float32 rounding. A model with no pair is
// an error wrapping ErrNoPair that names why each candidate failed.
func Equalize(m *layers.Model) (CLEReport, error) {
	for _, q := range m.Quantizers() {
		if _, ok := q.Params(); ok {
			return CLEReport{}, fmt.Errorf("cle: model %s is calibrated (quantizer %s has params): equalize before calibration", m.Spec.Name, q.Name)
		}
	}
	pairs, skipped, err := findPairs(m)
	if err != nil {
		return CLEReport{}, err
	}
	rep := CLEReport{Skipped: skipped}
	if len(pairs) == 0 {
		return rep, fmt.Errorf("cle: model %s: %w (%s)", m.Spec.Name, ErrNoPair, strings.Join(skipped, "; "))
	}
	for _, p := range pairs {
		rep.Pairs = append(rep.Pairs, p.first.node.Name+"->"+p.second.node.Name)
	}
	for rep.Passes < cleMaxPasses {
		rep.Passes++
		rep.MaxStep = 0
		for _, p := range pairs {
			rep.MaxStep = math.Max(rep.MaxStep, p.equalize())
		}
		if rep.MaxStep < cleTol {
			break
		}
	}
	return rep, nil
}

// findPairs returns m's equalizable pairs in graph order and, for each
// other conv or linear layer, why its output is not equalized.
func findPairs(m *layers.Model) ([]pair, []string, error) {
	ls, err := weightLayers(m, foldedDomain(m))
	if err != nil {
		return nil, nil, err
	}
	byIndex := map[int]*layer{}
	for _, l := range ls {
		byIndex[l.index] = l
	}
	src, err := m.Spec.Sources()
	if err != nil {
		return nil, nil, err
	}
	readers := make([][]int, len(m.Spec.Nodes))
	for i, s := range src {
		for _, j := range s {
			if j >= 0 {
				readers[j] = append(readers[j], i)
			}
		}
	}
	var pairs []pair
	var skipped []string
	for _, l := range ls {
		second, why := chainFrom(m, l, readers)
		if why != "" {
			skipped = append(skipped, l.node.Name+": "+why)
			continue
		}
		p := pair{first: l, second: byIndex[second], spatial: 1}
		if p.second.node.Op == model.OpLinear {
			p.spatial = p.second.in[0] / l.out
		}
		pairs = append(pairs, p)
	}
	return pairs, skipped, nil
}

// chainFrom follows the output of layer l to the conv or linear node it
// feeds alone and returns its index, or why there is none.
func chainFrom(m *layers.Model, l *layer, readers [][]int) (int, string) {
	switch {
	case l.node.Act == model.OpReLU6:
		return 0, "fused relu6 is not positively homogeneous"
	case l.node.Act != "" && l.node.Act != model.OpReLU:
		return 0, fmt.Sprintf("fused activation %s", l.node.Act)
	case l.gamma != nil && l.sf == nil:
		return 0, "its BatchNorm is not folded (no_fold_bn): scaling through it is not exact"
	}
	cur := l.index
	for {
		r := readers[cur]
		if len(r) == 0 {
			return 0, "its output is the model's"
		}
		if len(r) != 1 {
			return 0, fmt.Sprintf("%s feeds %d nodes", m.Spec.Label(cur), len(r))
		}
		next := m.Spec.Nodes[r[0]]
		switch next.Op {
		case model.OpConv, model.OpLinear:
			return r[0], ""
		case model.OpMaxPool, model.OpAvgPool, model.OpGlobalAvgPool, model.OpFlatten, model.OpReLU:
			cur = r[0]
		default:
			return 0, fmt.Sprintf("%s is not positively homogeneous per channel", m.Spec.Label(r[0]))
		}
	}
}

// channel returns the input channel of element e of output row o of the
// second layer.
func (p pair) channel(o, e int) int {
	s := p.second
	if s.node.Op == model.OpLinear {
		return e / p.spatial
	}
	cg := s.in[0] / s.groups
	return (o/(s.out/s.groups))*cg + e/(s.kernel*s.kernel)
}

// equalize does one equalization step of the pair and returns the
// largest |s_c - 1|.
func (p pair) equalize() float64 {
	a, b := p.first, p.second
	r1 := make([]float64, a.out)
	fa := a.folded()
	for c := range a.out {
		for _, v := range fa[c*a.inner : (c+1)*a.inner] {
			r1[c] = math.Max(r1[c], math.Abs(float64(v)))
		}
	}
	r2 := make([]float64, a.out)
	fb := b.folded()
	for i, v := range fb {
		c := p.channel(i/b.inner, i%b.inner)
		r2[c] = math.Max(r2[c], math.Abs(float64(v)))
	}
	s := make([]float64, a.out)
	worst := 0.0
	for c := range s {
		s[c] = 1
		if r1[c] > 0 && r2[c] > 0 && !math.IsInf(r1[c]*r2[c], 0) {
			s[c] = math.Sqrt(r1[c]*r2[c]) / r2[c]
		}
		worst = math.Max(worst, math.Abs(s[c]-1))
	}
	for c, sc := range s {
		if sc == 1 {
			continue
		}
		if a.gamma != nil {
			a.gamma.Data[c] = float32(float64(a.gamma.Data[c]) / sc)
			a.beta.Data[c] = float32(float64(a.beta.Data[c]) / sc)
		} else {
			row := a.w.Data[c*a.inner : (c+1)*a.inner]
			for i, v := range row {
				row[i] = float32(float64(v) / sc)
			}
			if a.b != nil {
				a.b.Data[c] = float32(float64(a.b.Data[c]) / sc)
			}
		}
	}
	for i, v := range b.w.Data {
		b.w.Data[i] = float32(float64(v) * s[p.channel(i/b.inner, i%b.inner)])
	}
	if a.sf != nil {
		a.refold()
	}
	return worst
}
