package ops

import (
	"fmt"
	"math"
	"sync"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
)

// CrossEntropy is the mean softmax cross-entropy over a batch, PyTorch's
// F.cross_entropy(logits, labels) with reduction "mean" and no class
// weights or label smoothing:
//
//	loss = (1/N) * sum_i (logsumexp(logits[i, :]) - logits[i, labels[i]])
//
// Each row's log-softmax is computed stably (the row maximum subtracted
// before exp, sums in float64), so large logits do not overflow; NaN
// logits give a NaN loss and +Inf logits a NaN, as in PyTorch. The loss
// node is a float32 scalar (type float32, shape ()), so it can be the cost
// of gorgonia.Grad, which requires a scalar and seeds its gradient with
// the constant 1. Its gradient op (inputs logits, the upstream scalar
// gradient g, and the loss itself, for ordering) returns
// dlogits = g * (softmax(logits) - onehot(labels)) / N, [N, K]. Each op
// node owns its output (the loss scalar, the gradient tensor) and
// overwrites it on every run (see Buffers in the package doc).
//
// The labels are not a graph node: SetLabels hands them to the loss before
// each run. A run of the loss node takes them (so a second run without a
// new SetLabels is an error rather than a silent reuse of stale labels)
// and records them for its gradient op of the same run. Runs with no
// labels set, a label count other than N, or a label outside [0, K)
// return an error naming the op and the first bad index and value;
// PyTorch's ignore_index (-100) is not supported and is such an error.
type CrossEntropy struct {
	op   *ceOp
	node *gorgonia.Node
}

// NewCrossEntropy returns the loss of logits [N, K], a float32 node of
// known shape (other ranks, dtypes and unknown shapes are errors).
func NewCrossEntropy(logits *gorgonia.Node) (*CrossEntropy, error) {
	return newLoss("ops.NewCrossEntropy", logits, nil)
}

// Distill is the distillation term of a loss (NewDistillation): the
// temperature T > 0 that softens the student's and the teacher's
// logits, and the weight Alpha in [0, 1] of the distillation term.
type Distill struct {
	Temperature float64
	Alpha       float64
}

// Validate checks that T is finite and positive and Alpha in [0, 1].
func (d Distill) Validate() error {
	if !(d.Temperature > 0) || math.IsInf(d.Temperature, 0) {
		return fmt.Errorf("distillation temperature %v: want a finite number above 0", d.Temperature)
	}
	if !(d.Alpha >= 0 && d.Alpha <= 1) {
		return fmt.Errorf("distillation alpha %v: want 0 <= alpha <= 1", d.Alpha)
	}
	return nil
}

// NewDistillation returns the knowledge-distillation loss of Hinton et
// al. 2015 of student logits [N, K] (as NewCrossEntropy's) against the
// labels and a teacher's logits t [N, K], with temperature T and weight
// alpha (d):
//
//	loss = (1-alpha) * CE + alpha * KD
//	CE   = (1/N) * sum_i (logsumexp(logits[i, :]) - logits[i, labels[i]])
//	KD   = T^2 * (1/N) * sum_i KL(softmax(t[i, :]/T) || softmax(logits[i, :]/T))
//
// PyTorch's (1-alpha)*F.cross_entropy(z, y) + alpha*T*T*F.kl_div(
// F.log_softmax(z/T, 1), F.softmax(t/T, 1), reduction="batchmean"). The
// teacher's logits are constants, not a graph node: SetTeacher hands
// them to the loss before each run, and a run takes them as it takes the
// labels. KL's terms with a teacher probability of 0 are 0. Every sum is
// in float64 (each log-softmax stable, as CrossEntropy's); CE, KD
// (Terms) and the loss are rounded to float32 once, the loss at the end.
// The gradient op returns
//
//	dlogits = g/N * ((1-alpha)*(softmax(logits) - onehot(labels)) + alpha*T*(softmax(logits/T) - softmax(t/T)))
//
// in float64, rounded once. With alpha 0 the loss and its gradient are
// CrossEntropy's bit for bit: its terms are computed in the same order
// and the KD term adds an exact zero.
func NewDistillation(logits *gorgonia.Node, d Distill) (*CrossEntropy, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("ops.NewDistillation: %w", err)
	}
	return newLoss("ops.NewDistillation", logits, &d)
}

func newLoss(who string, logits *gorgonia.Node, d *Distill) (*CrossEntropy, error) {
	if err := checkNode(logits, "logits", 2); err != nil {
		return nil, fmt.Errorf("%s: %w", who, err)
	}
	s := logits.Shape()
	id := graphval.NewID()
	op := &ceOp{base: named("CrossEntropy#%d", id), id: id, n: s[0], k: s[1], distill: d}
	if d != nil {
		op.base = named("Distillation#%d", id)
	}
	y, err := gorgonia.ApplyOp(op, logits)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", who, err)
	}
	return &CrossEntropy{op: op, node: y}, nil
}

// Node returns the scalar float32 loss node.
func (l *CrossEntropy) Node() *gorgonia.Node { return l.node }

// SetLabels sets the class of each of the N rows for the next run; labels
// is copied. Its length and values are checked when the loss runs, so
// SetLabels itself cannot fail. It may be called from another goroutine
// than the one running the graph, but not during a run that needs them.
func (l *CrossEntropy) SetLabels(labels []int) {
	l.op.mu.Lock()
	l.op.pending = append(l.op.pending[:0], labels...)
	l.op.set = true
	l.op.mu.Unlock()
}

// SetTeacher sets the teacher's logits [N, K], row-major, of a
// distillation loss (NewDistillation) for the next run; teacher is
// copied, and its length is checked when the loss runs, as SetLabels's
// labels. It panics on a loss without distillation, which has no use for
// them.
func (l *CrossEntropy) SetTeacher(teacher []float32) {
	if l.op.distill == nil {
		panic(fmt.Sprintf("ops: SetTeacher on %v, which has no distillation term", l.op))
	}
	l.op.mu.Lock()
	l.op.pendingT = append(l.op.pendingT[:0], teacher...)
	l.op.setT = true
	l.op.mu.Unlock()
}

// Terms returns the last run's CE and, for a distillation loss, KD terms
// (see NewDistillation), in float64; kd is 0 without distillation. The
// loss is (1-alpha)*ce + alpha*kd rounded to float32.
func (l *CrossEntropy) Terms() (ce, kd float64) {
	l.op.mu.Lock()
	defer l.op.mu.Unlock()
	return l.op.ce, l.op.kd
}

// ceOp is the loss: input logits [N, K], output a float32 scalar.
type ceOp struct {
	base
	id   uint64
	n, k int

	mu      sync.Mutex
	pending []int // labels from SetLabels
	set     bool  // pending holds labels not yet taken by a run
	used    []int // labels of the last forward run, for its gradient
	ran     bool  // used is valid
	loss    *gorgonia.F32

	// distill, if not nil, adds the distillation term: pendingT and setT
	// are the teacher's logits from SetTeacher as pending and set are the
	// labels, usedT those of the last forward run.
	distill  *Distill
	pendingT []float32
	setT     bool
	usedT    []float32
	// ce and kd are the last run's terms.
	ce, kd float64
}

func (op *ceOp) Arity() int    { return 1 }
func (op *ceOp) Type() hm.Type { return hm.NewFnType(graphval.TypeMat, tensor.Float32) }
func (op *ceOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := graphval.ShapeArg(ds, 0)
	if err != nil {
		return nil, err
	}
	if len(s) != 2 {
		return nil, fmt.Errorf("%v: logits shape %v, want [N, K]", op, s)
	}
	return tensor.ScalarShape(), nil
}

// readLogits reads the logits value and checks it against [N, K].
func (op *ceOp) readLogits(who fmt.Stringer, v gorgonia.Value) ([]float32, error) {
	z, zs, err := graphval.ReadFloat32s(who, v, "logits")
	if err != nil {
		return nil, err
	}
	if !zs.Eq(tensor.Shape{op.n, op.k}) {
		return nil, fmt.Errorf("%v: logits have shape %v, want [%d %d]", who, zs, op.n, op.k)
	}
	return z, nil
}

// logSumExp returns log(sum(exp(row))) in float64, subtracting the row's
// maximum first.
func logSumExp(row []float32) float64 {
	m := math.Inf(-1)
	for _, v := range row {
		if float64(v) > m {
			m = float64(v)
		}
	}
	if math.IsInf(m, -1) {
		return m // all -Inf
	}
	var s float64
	for _, v := range row {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

func (op *ceOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	op.ran = false
	z, err := op.readLogits(op, vals[0])
	if err != nil {
		return nil, err
	}
	if !op.set {
		return nil, fmt.Errorf("%v: labels not set (call SetLabels before each run)", op)
	}
	op.set = false
	labels := op.pending
	if len(labels) != op.n {
		return nil, fmt.Errorf("%v: %d labels for a batch of %d", op, len(labels), op.n)
	}
	for i, c := range labels {
		if c < 0 || c >= op.k {
			return nil, fmt.Errorf("%v: label %d is %d, want 0 <= label < %d", op, i, c, op.k)
		}
	}
	if err := op.takeTeacher(); err != nil {
		return nil, err
	}
	var sum float64
	for i, c := range labels {
		row := z[i*op.k : (i+1)*op.k]
		sum += logSumExp(row) - float64(row[c])
	}
	op.used = append(op.used[:0], labels...)
	op.ran = true
	if op.loss == nil {
		op.loss = gorgonia.NewF32(0)
	}
	op.ce = sum / float64(op.n)
	loss := op.ce
	if d := op.distill; d != nil {
		var kl float64
		for i := 0; i < op.n; i++ {
			kl += softKL(op.usedT[i*op.k:(i+1)*op.k], z[i*op.k:(i+1)*op.k], d.Temperature)
		}
		op.kd = d.Temperature * d.Temperature * kl / float64(op.n)
		loss = (1-d.Alpha)*op.ce + d.Alpha*op.kd
	}
	*op.loss = gorgonia.F32(float32(loss))
	return op.loss, nil
}

// takeTeacher takes the teacher's logits SetTeacher set, for a
// distillation loss, into usedT; op.mu is held.
func (op *ceOp) takeTeacher() error {
	if op.distill == nil {
		return nil
	}
	if !op.setT {
		return fmt.Errorf("%v: teacher logits not set (call SetTeacher before each run)", op)
	}
	op.setT = false
	if len(op.pendingT) != op.n*op.k {
		return fmt.Errorf("%v: %d teacher logits, want %d (%d x %d)", op, len(op.pendingT), op.n*op.k, op.n, op.k)
	}
	op.usedT = append(op.usedT[:0], op.pendingT...)
	return nil
}

// softLogSumExp returns log(sum(exp(row/T))) in float64, subtracting the
// row's maximum first.
func softLogSumExp(row []float32, T float64) float64 {
	m := math.Inf(-1)
	for _, v := range row {
		if float64(v)/T > m {
			m = float64(v) / T
		}
	}
	if math.IsInf(m, -1) {
		return m // all -Inf
	}
	var s float64
	for _, v := range row {
		s += math.Exp(float64(v)/T - m)
	}
	return m + math.Log(s)
}

// softKL returns KL(softmax(t/T) || softmax(z/T)) of one row, in float64;
// terms whose teacher probability is 0 are 0.
func softKL(t, z []float32, T float64) float64 {
	lt, lz := softLogSumExp(t, T), softLogSumExp(z, T)
	var s float64
	for j, v := range t {
		logP := float64(v)/T - lt
		p := math.Exp(logP)
		if p == 0 {
			continue
		}
		s += p * (logP - (float64(z[j])/T - lz))
	}
	return s
}

func (op *ceOp) DiffWRT(inputs int) []bool { return []bool{true} }

func (op *ceOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%v: %d inputs, want 1", op, len(inputs))
	}
	gz, err := gorgonia.ApplyOp(&ceGradOp{base: named("CrossEntropyGrad#%d", op.id), fwd: op}, inputs[0], grad, output)
	if err != nil {
		return nil, fmt.Errorf("%v: logits gradient: %w", op, err)
	}
	return gorgonia.Nodes{gz}, nil
}

var _ gorgonia.SDOp = (*ceOp)(nil)

// ceGradOp is the logits gradient: inputs logits, the upstream scalar
// gradient and the loss (for ordering only).
type ceGradOp struct {
	base
	fwd *ceOp
	out graphval.Buffer
}

func (op *ceGradOp) Arity() int { return 3 }
func (op *ceGradOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeMat, tensor.Float32, tensor.Float32, graphval.TypeMat)
}
func (op *ceGradOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return graphval.ShapeArg(ds, 0)
}

func (op *ceGradOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	f := op.fwd
	z, err := f.readLogits(op, vals[0])
	if err != nil {
		return nil, err
	}
	g, err := readScalar(op, vals[1], "output gradient")
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ran {
		return nil, fmt.Errorf("%v: gradient run before the forward pass", op)
	}
	out, dz := op.out.Dense(tensor.Shape{f.n, f.k})
	scale := float64(g) / float64(f.n)
	for i, c := range f.used {
		row := z[i*f.k : (i+1)*f.k]
		lse := logSumExp(row)
		dst := dz[i*f.k : (i+1)*f.k]
		if d := f.distill; d != nil {
			distillGrad(dst, row, f.usedT[i*f.k:(i+1)*f.k], c, lse, scale, *d)
			continue
		}
		for j, v := range row {
			p := math.Exp(float64(v) - lse)
			if j == c {
				p--
			}
			dst[j] = float32(p * scale)
		}
	}
	return out, nil
}

// distillGrad writes one row's gradient of the distillation loss: the
// student's logits z with log-sum-exp lse and label c, the teacher's
// logits t, and g/N as scale. The CE part p is computed as CrossEntropy's
// gradient computes it, so that alpha 0 gives its bits.
func distillGrad(dst, z, t []float32, c int, lse, scale float64, d Distill) {
	T := d.Temperature
	lz, lt := softLogSumExp(z, T), softLogSumExp(t, T)
	for j, v := range z {
		p := math.Exp(float64(v) - lse)
		if j == c {
			p--
		}
		q := math.Exp(float64(v)/T-lz) - math.Exp(float64(t[j])/T-lt)
		dst[j] = float32(((1-d.Alpha)*p + d.Alpha*T*q) * scale)
	}
}

var _ gorgonia.Op = (*ceGradOp)(nil)
