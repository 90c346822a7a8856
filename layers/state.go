package layers

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"

	"qat/model"
	"qat/ops"
	"qat/quant"
	"qat/safetensors"
)

// Checkpoint metadata keys written by SaveState.
const (
	MetaArch       = "qat.arch"       // model.Graph JSON
	MetaQuant      = "qat.quant"      // QuantConfig JSON; absent for a float model
	MetaQuantizers = "qat.quantizers" // quantizer state JSON
	MetaFreeze     = "qat.freeze"     // {"observers":bool,"bn":bool}
)

type quantizerMeta struct {
	Name     string `json:"name"`
	Learning bool   `json:"learning"`
	HasRange bool   `json:"has_range,omitempty"`
}

type freezeMeta struct {
	Observers bool `json:"observers"`
	BN        bool `json:"bn"`
}

// rangeObserver is an observer whose extrema can be saved and restored.
type rangeObserver interface {
	Range() (min, max []float32)
	SetRange(min, max []float32) error
}

// SaveState writes the model into f: every param under its state_dict
// name, BN buffers (running_mean, running_var, num_batches_tracked), and
// for each quantizer its scale and zero_point (int32, or float32 when
// learned) plus the observer's min_val and max_val where it keeps a range,
// with the architecture and quant config as metadata. f's maps are created
// if nil; existing entries of the same names are replaced.
func (m *Model) SaveState(f *safetensors.File) error {
	if f.Tensors == nil {
		f.Tensors = map[string]safetensors.Tensor{}
	}
	if f.Metadata == nil {
		f.Metadata = map[string]string{}
	}
	arch, err := json.Marshal(m.Spec)
	if err != nil {
		return fmt.Errorf("save %s: %w", m.Spec.Name, err)
	}
	f.Metadata[MetaArch] = string(arch)
	for _, p := range m.params {
		f.Tensors[p.Name] = safetensors.FromFloat32(p.Shape, p.Data)
	}
	for _, name := range m.bnNames() {
		bn := m.bns[name]
		c := len(bn.RunningMean)
		f.Tensors[name+".running_mean"] = safetensors.FromFloat32([]int{c}, bn.RunningMean)
		f.Tensors[name+".running_var"] = safetensors.FromFloat32([]int{c}, bn.RunningVar)
		f.Tensors[name+".num_batches_tracked"] = safetensors.FromInt64([]int{}, []int64{bn.NumBatchesTracked})
	}
	if m.Quant == nil {
		return nil
	}
	qc, err := json.Marshal(m.Quant)
	if err != nil {
		return fmt.Errorf("save %s: %w", m.Spec.Name, err)
	}
	f.Metadata[MetaQuant] = string(qc)
	fr, _ := json.Marshal(freezeMeta{m.observersFrozen, m.bnFrozen})
	f.Metadata[MetaFreeze] = string(fr)
	metas := make([]quantizerMeta, 0, len(m.quantizers))
	for _, q := range m.quantizers {
		meta := quantizerMeta{Name: q.Name, Learning: q.Learning}
		if q.Learning {
			f.Tensors[q.Scale.Name] = safetensors.FromFloat32(q.Scale.Shape, q.Scale.Data)
			f.Tensors[q.ZeroPoint.Name] = safetensors.FromFloat32(q.ZeroPoint.Shape, q.ZeroPoint.Data)
		} else if p, ok := q.FQ.Params(); ok {
			f.Tensors[q.Name+".scale"] = safetensors.FromFloat32([]int{len(p.Scale)}, p.Scale)
			f.Tensors[q.Name+".zero_point"] = safetensors.FromInt32([]int{len(p.ZeroPoint)}, p.ZeroPoint)
		}
		if r, ok := q.FQ.Observer().(rangeObserver); ok {
			if lo, hi := r.Range(); len(lo) > 0 {
				f.Tensors[q.Name+".min_val"] = safetensors.FromFloat32([]int{len(lo)}, lo)
				f.Tensors[q.Name+".max_val"] = safetensors.FromFloat32([]int{len(hi)}, hi)
				meta.HasRange = true
			}
		}
		metas = append(metas, meta)
	}
	qs, err := json.Marshal(metas)
	if err != nil {
		return fmt.Errorf("save %s: %w", m.Spec.Name, err)
	}
	f.Metadata[MetaQuantizers] = string(qs)
	return nil
}

func (m *Model) bnNames() []string {
	names := make([]string, 0, len(m.bns))
	for n := range m.bns {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LoadState rebuilds a model from a checkpoint written by SaveState. It
// returns the model and the names of the tensors it used; every tensor the
// model needs must be present with its exact dtype and shape and finite
// values, or the error names it. Tensors the model does not use are left
// to the caller (a trainer's optimizer state) to check.
func LoadState(f *safetensors.File) (*Model, map[string]bool, error) {
	m, err := modelOfArch(f)
	if err != nil {
		return nil, nil, err
	}
	r := &stateReader{f: f, model: m.Spec.Name, used: map[string]bool{}}
	if err := r.loadParams(m); err != nil {
		return nil, nil, err
	}
	if err := r.loadBNs(m); err != nil {
		return nil, nil, err
	}
	qcJSON, ok := f.Metadata[MetaQuant]
	if !ok {
		return m, r.used, nil
	}
	if err := r.loadQuant(m, qcJSON); err != nil {
		return nil, nil, err
	}
	m.version++
	return m, r.used, nil
}

// modelOfArch builds the untrained model that f's architecture metadata
// describes.
func modelOfArch(f *safetensors.File) (*Model, error) {
	arch, ok := f.Metadata[MetaArch]
	if !ok {
		return nil, fmt.Errorf("checkpoint has no %s metadata: not a qat checkpoint", MetaArch)
	}
	spec, err := model.Parse([]byte(arch))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", MetaArch, err)
	}
	return NewModel(spec, 0)
}

// stateReader reads a checkpoint's tensors for LoadState and records the
// names of those it used.
type stateReader struct {
	f     *safetensors.File
	model string // the architecture's name, for errors
	used  map[string]bool
}

// floats returns tensor name's values, which must have exactly the given
// shape, convert to float32 and be finite, and marks it used.
func (r *stateReader) floats(name string, shape []int) ([]float32, error) {
	t, ok := r.f.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint is missing tensor %s", name)
	}
	if !slices.Equal(t.Shape, shape) {
		return nil, fmt.Errorf("checkpoint tensor %s has shape %v, model %s wants %v", name, t.Shape, r.model, shape)
	}
	v, err := t.Float32()
	if err != nil {
		return nil, fmt.Errorf("checkpoint tensor %s: %w", name, err)
	}
	if i := firstNonFinite(v); i >= 0 {
		return nil, fmt.Errorf("checkpoint tensor %s: element %d is %v", name, i, v[i])
	}
	r.used[name] = true
	return v, nil
}

// loadParams copies every param of m from the checkpoint.
func (r *stateReader) loadParams(m *Model) error {
	for _, p := range m.params {
		v, err := r.floats(p.Name, p.Shape)
		if err != nil {
			return err
		}
		copy(p.Data, v)
	}
	return nil
}

// loadBNs restores the buffers of every BatchNorm of m, in name order.
func (r *stateReader) loadBNs(m *Model) error {
	for _, name := range m.bnNames() {
		if err := r.loadBN(name, m.bns[name]); err != nil {
			return err
		}
	}
	return nil
}

// loadBN restores the running statistics of BatchNorm name, whose running
// variance must not be negative, and its num_batches_tracked if stored.
func (r *stateReader) loadBN(name string, bn *ops.BatchNorm) error {
	c := len(bn.RunningMean)
	rm, err := r.floats(name+".running_mean", []int{c})
	if err != nil {
		return err
	}
	rv, err := r.floats(name+".running_var", []int{c})
	if err != nil {
		return err
	}
	for i, v := range rv {
		if v < 0 {
			return fmt.Errorf("checkpoint tensor %s.running_var: element %d is negative (%v)", name, i, v)
		}
	}
	copy(bn.RunningMean, rm)
	copy(bn.RunningVar, rv)
	if t, ok := r.f.Tensors[name+".num_batches_tracked"]; ok {
		v, err := t.Int64()
		if err != nil || len(v) != 1 {
			return fmt.Errorf("checkpoint tensor %s.num_batches_tracked: want one int64 (%v)", name, err)
		}
		bn.NumBatchesTracked = v[0]
		r.used[name+".num_batches_tracked"] = true
	}
	return nil
}

// loadQuant quantizes m with the quant config qcJSON, restores its freeze
// flags, and restores each quantizer the quantizer metadata lists, which
// must be m's in order.
func (r *stateReader) loadQuant(m *Model, qcJSON string) error {
	qc, err := ParseQuantConfig([]byte(qcJSON))
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", MetaQuant, err)
	}
	if err := m.Quantize(qc); err != nil {
		return fmt.Errorf("checkpoint %s: %w", MetaQuant, err)
	}
	if fr, ok := r.f.Metadata[MetaFreeze]; ok {
		var fm freezeMeta
		if err := json.Unmarshal([]byte(fr), &fm); err != nil {
			return fmt.Errorf("checkpoint %s: %w", MetaFreeze, err)
		}
		m.observersFrozen, m.bnFrozen = fm.Observers, fm.BN
	}
	var metas []quantizerMeta
	if err := json.Unmarshal([]byte(r.f.Metadata[MetaQuantizers]), &metas); err != nil {
		return fmt.Errorf("checkpoint %s: %w", MetaQuantizers, err)
	}
	if len(metas) != len(m.quantizers) {
		return fmt.Errorf("checkpoint %s lists %d quantizers, the quant config makes %d", MetaQuantizers, len(metas), len(m.quantizers))
	}
	for i, q := range m.quantizers {
		meta := metas[i]
		if meta.Name != q.Name {
			return fmt.Errorf("checkpoint %s: quantizer %d is %q, want %q", MetaQuantizers, i, meta.Name, q.Name)
		}
		if err := r.loadQuantizer(m, q, meta); err != nil {
			return err
		}
	}
	return nil
}

// loadQuantizer restores quantizer q of m as meta describes: its observer's
// range if one was saved, then its learned scale and zero point, or the
// params it had observed.
func (r *stateReader) loadQuantizer(m *Model, q *Quantizer, meta quantizerMeta) error {
	channels, err := quantizerChannels(m, q)
	if err != nil {
		return err
	}
	if meta.HasRange {
		if err := r.loadRange(q, channels); err != nil {
			return err
		}
	}
	if meta.Learning {
		return r.loadLearned(q, channels)
	}
	return r.loadObserved(q, channels, meta.HasRange)
}

// quantizerChannels returns how many scales q has: the size of its weight's
// channel axis when per-channel, else 1.
func quantizerChannels(m *Model, q *Quantizer) (int, error) {
	if !q.Scheme.PerChannel {
		return 1, nil
	}
	p := m.Param(q.Layer + ".weight")
	if p == nil {
		return 0, fmt.Errorf("quantizer %s: no weight %s.weight", q.Name, q.Layer)
	}
	return p.Shape[q.Scheme.Axis], nil
}

// loadRange restores the min_val and max_val of q's observer, which must
// keep a range.
func (r *stateReader) loadRange(q *Quantizer, channels int) error {
	lo, err := r.floats(q.Name+".min_val", []int{channels})
	if err != nil {
		return err
	}
	hi, err := r.floats(q.Name+".max_val", []int{channels})
	if err != nil {
		return err
	}
	o, ok := q.FQ.Observer().(rangeObserver)
	if !ok {
		return fmt.Errorf("quantizer %s: checkpoint has a range but observer %s keeps none", q.Name, q.Spec.ObserverConfig(q.Role == RoleWeight).Kind)
	}
	if err := o.SetRange(lo, hi); err != nil {
		return fmt.Errorf("quantizer %s: %w", q.Name, err)
	}
	return nil
}

// loadLearned restores q's learned scale and zero point as params and
// turns learning on; the quant config must have a learnable kind.
func (r *stateReader) loadLearned(q *Quantizer, channels int) error {
	if q.Learn == nil {
		return fmt.Errorf("quantizer %s: checkpoint says learning but the quant config has no learnable kind", q.Name)
	}
	s, err := r.floats(q.Name+".scale", []int{channels})
	if err != nil {
		return err
	}
	z, err := r.floats(q.Name+".zero_point", []int{channels})
	if err != nil {
		return err
	}
	q.Scale = &Param{Name: q.Name + ".scale", Shape: []int{channels}, Data: s, Grad: make([]float32, channels), Quantizer: true}
	q.ZeroPoint = &Param{Name: q.Name + ".zero_point", Shape: []int{channels}, Data: z, Grad: make([]float32, channels), Quantizer: true}
	q.Learning = true
	if _, ok := q.Params(); !ok {
		return fmt.Errorf("quantizer %s: invalid learned scale or zero point", q.Name)
	}
	return nil
}

// loadObserved restores the scale and int32 zero point q had observed, if
// it was saved with any; with hasRange they must be those of its restored
// range.
func (r *stateReader) loadObserved(q *Quantizer, channels int, hasRange bool) error {
	if _, ok := r.f.Tensors[q.Name+".scale"]; !ok {
		return nil // never observed: stays without params
	}
	s, err := r.floats(q.Name+".scale", []int{channels})
	if err != nil {
		return err
	}
	zt, ok := r.f.Tensors[q.Name+".zero_point"]
	if !ok {
		return fmt.Errorf("checkpoint is missing tensor %s.zero_point", q.Name)
	}
	z, err := zt.Int32()
	if err != nil || len(z) != channels {
		return fmt.Errorf("checkpoint tensor %s.zero_point: want %d int32 values (%v)", q.Name, channels, err)
	}
	r.used[q.Name+".zero_point"] = true
	p := quant.Params{Scale: s, ZeroPoint: z, QMin: q.Scheme.QMin(), QMax: q.Scheme.QMax(), Axis: -1}
	if q.Scheme.PerChannel {
		p.Axis = q.Scheme.Axis
	}
	for i, v := range s {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("checkpoint tensor %s.scale: element %d is %v, want a positive finite scale", q.Name, i, v)
		}
	}
	if hasRange {
		if err := checkParamsOfRange(q, p); err != nil {
			return err
		}
	}
	if err := q.FQ.SetParams(p); err != nil {
		return fmt.Errorf("quantizer %s: %w", q.Name, err)
	}
	return nil
}

// checkParamsOfRange checks a restored min/max quantizer's stored params
// against those its restored range gives under the scheme of the
// checkpoint's quant config: they are computed from it, so a difference
// means the metadata and the tensors disagree (a quant config that says
// 4 bits over params computed at 8, an edited range or scale), which
// would otherwise evaluate silently wrong.
func checkParamsOfRange(q *Quantizer, stored quant.Params) error {
	o, ok := q.FQ.Observer().(interface{ Params() (quant.Params, error) })
	if !ok {
		return nil
	}
	want, err := o.Params()
	if err != nil {
		return nil // an empty range: nothing to compare
	}
	for c := range want.Scale {
		if stored.Scale[c] != want.Scale[c] || stored.ZeroPoint[c] != want.ZeroPoint[c] {
			return fmt.Errorf("quantizer %s: stored scale %v and zero point %d (channel %d) are not those of its stored range under the quant config's %d-bit scheme (scale %v, zero point %d): the checkpoint's metadata and tensors disagree",
				q.Name, stored.Scale[c], stored.ZeroPoint[c], c, q.Scheme.NumBits(), want.Scale[c], want.ZeroPoint[c])
		}
	}
	return nil
}
