package autobits

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// Metric is what a budget limits.
type Metric string

// The metrics of a budget (see the package documentation for how each is
// measured).
const (
	// MetricBytes is the size of the int8 model file in bytes.
	MetricBytes Metric = "bytes"
	// MetricLatency is the int8 runtime's time for one batch in
	// milliseconds.
	MetricLatency Metric = "latency_ms"
)

// Budget is the most of Metric the chosen model may take.
type Budget struct {
	Metric Metric  `json:"metric"`
	Limit  float64 `json:"limit"`
}

// ErrUnreachable is wrapped by the errors of a budget below what the
// search reaches.
var ErrUnreachable = errors.New("budget unreachable")

// String is e.g. "40000 bytes" or "1.5 ms".
func (b Budget) String() string { return formatValue(b.Metric, b.Limit) }

// formatValue writes v in m's unit.
func formatValue(m Metric, v float64) string {
	if m == MetricBytes {
		return strconv.FormatFloat(v, 'f', -1, 64) + " bytes"
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " ms"
}

// Validate reports whether b names a metric and a positive, finite limit.
func (b Budget) Validate() error {
	switch b.Metric {
	case MetricBytes, MetricLatency:
	default:
		return fmt.Errorf("autobits: budget metric %q: want %s or %s", b.Metric, MetricBytes, MetricLatency)
	}
	if !(b.Limit > 0) || math.IsInf(b.Limit, 0) {
		return fmt.Errorf("autobits: budget %v %s: want a positive, finite limit", b.Limit, b.Metric)
	}
	return nil
}

// Value is a measured metric V and the range [Lo, Hi] of what the
// measurement saw: a latency's fastest and slowest runs; V itself for
// bytes. A move saves only when its Hi is below the Lo of the assignment
// it leaves: every run faster than every run before. Of two equally fast
// assignments of 7 runs each, one passes that way with probability
// 1/3432 (one ordering of the 14 runs' ranks in C(14, 7)).
type Value struct{ V, Lo, Hi float64 }

// Measure returns the metric of an assignment.
type Measure func(Assignment) (Value, error)

// Step is an assignment the search measured.
type Step struct {
	Bits Assignment `json:"bits"`
	// Value is the measured metric (Value.V).
	Value float64 `json:"value"`
	// Predicted is Table.Predict of Bits, in percentage points.
	Predicted float64 `json:"predicted_drop_pp"`
	// Move is the change from the assignment it was reached from, e.g.
	// "fc1 weight 8 -> 4 bits"; "" for all-W8A8.
	Move string `json:"move,omitempty"`
	// From is the assignment it was reached from ("" for all-W8A8).
	From string `json:"from,omitempty"`
}

// Search is what Greedy found.
type Search struct {
	// Beam holds the assignments each round kept to move on from, all-W8A8
	// alone in round 0.
	Beam [][]Step `json:"beam"`
	// Candidates are the assignments within budget to choose from, least
	// predicted drop first: none narrower everywhere than another.
	Candidates []Step `json:"candidates"`
	// Measured counts the distinct assignments measured.
	Measured int `json:"measured"`
}

// scored is a step out of budget with its cost per unit saved.
type scored struct {
	step          Step
	lo            float64
	ratio, saving float64
}

// Greedy searches from all-W8A8 for up to k (at least 1) candidate
// assignments of t's layers within budget b, measuring each with measure:
// a greedy search with a beam of k. Each round measures every move of
// every assignment of the beam to an assignment not taken before: one
// layer's weight or output to any narrower width of Widths, taken when it
// saves (Value). A move within budget gives a candidate; of those out of
// budget, the k with the least predicted cost per unit saved, both
// counted from the assignment moved from (a cost below t.Floor counts as
// t.Floor), form the next beam, ties to the larger saving and then in the
// order the moves were made: by beam position, layer, weight before
// output, wider first. The search stops once it has k candidates none
// narrower everywhere than another, or nothing to move on from. A bytes
// budget below the all-W2A2 model is refused first; any budget no move
// reaches is an error wrapping ErrUnreachable that names the smallest
// value measured.
func Greedy(t Table, b Budget, measure Measure, k int) (Search, error) {
	if err := b.Validate(); err != nil {
		return Search{}, err
	}
	if err := t.check(); err != nil {
		return Search{}, err
	}
	if k < 1 {
		return Search{}, fmt.Errorf("autobits: %d candidates: want at least 1", k)
	}
	var s Search
	cache := map[string]Value{}
	value := func(a Assignment) (Value, error) {
		key := fmt.Sprint(a)
		if v, ok := cache[key]; ok {
			return v, nil
		}
		v, err := measure(a)
		if err != nil {
			return Value{}, err
		}
		cache[key] = v
		s.Measured++
		return v, nil
	}
	if err := checkFloor(b, t.Layers, func(a Assignment) (float64, error) { v, err := value(a); return v.V, err }); err != nil {
		return Search{}, err
	}
	start := Uniform(t.Layers, Widths[0], Widths[0])
	sv, err := value(start)
	if err != nil {
		return Search{}, err
	}
	first := Step{Bits: start, Value: sv.V, Predicted: t.Predict(start)}
	s.Beam = [][]Step{{first}}
	if sv.V <= b.Limit {
		s.Candidates = []Step{first}
		return s, nil
	}
	beam := []scored{{step: first, lo: sv.Lo}}
	seen := map[string]bool{fmt.Sprint(start): true}
	smallest := first
	var found []Step
	for {
		var next []scored
		for _, parent := range beam {
			cur := parent.step.Bits
			for i, l := range cur {
				for _, weight := range []bool{true, false} {
					from, role := l.Act, "output"
					if weight {
						from, role = l.Weight, "weight"
					}
					for _, w := range Widths {
						if w >= from {
							continue
						}
						a := cur.with(i, weight, w)
						key := fmt.Sprint(a)
						if seen[key] {
							continue
						}
						v, err := value(a)
						if err != nil {
							return Search{}, err
						}
						if !(v.Hi < parent.lo) {
							continue // another parent may still reach it
						}
						seen[key] = true
						st := Step{Bits: a, Value: v.V, Predicted: t.Predict(a), Move: fmt.Sprintf("%s %s %d -> %d bits", l.Layer, role, from, w),
							From: cur.String()}
						if v.V < smallest.Value {
							smallest = st
						}
						if v.V <= b.Limit {
							found = append(found, st)
							continue
						}
						saving := parent.step.Value - v.V
						next = append(next, scored{step: st, lo: v.Lo, saving: saving, ratio: math.Max(st.Predicted-parent.step.Predicted, t.Floor) / saving})
					}
				}
			}
		}
		if len(next) == 0 || len(maximal(found)) >= k {
			break
		}
		sort.SliceStable(next, func(i, j int) bool {
			return next[i].ratio < next[j].ratio || next[i].ratio == next[j].ratio && next[i].saving > next[j].saving
		})
		beam = next[:min(k, len(next))]
		round := make([]Step, len(beam))
		for i, c := range beam {
			round[i] = c.step
		}
		s.Beam = append(s.Beam, round)
	}
	if len(found) == 0 {
		return Search{}, fmt.Errorf("autobits: budget %s is below the smallest the search reached, %s with %s: %w",
			b, formatValue(b.Metric, smallest.Value), smallest.Bits, ErrUnreachable)
	}
	c := maximal(found)
	sort.SliceStable(c, func(i, j int) bool { return c[i].Predicted < c[j].Predicted })
	s.Candidates = c[:min(k, len(c))]
	return s, nil
}

// maximal returns the steps of found, in order, that are not narrower
// everywhere than another (at most as wide in every weight and output,
// and different).
func maximal(found []Step) []Step {
	var out []Step
	for i, st := range found {
		dominated := false
		for j, o := range found {
			if i != j && narrower(st.Bits, o.Bits) {
				dominated = true
				break
			}
		}
		if !dominated {
			out = append(out, st)
		}
	}
	return out
}

// narrower reports whether a is at most as wide as b everywhere, and
// differs from it; both cover the same layers.
func narrower(a, b Assignment) bool {
	differs := false
	for i := range a {
		if a[i].Weight > b[i].Weight || a[i].Act > b[i].Act {
			return false
		}
		differs = differs || a[i] != b[i]
	}
	return differs
}

// checkFloor refuses a bytes budget below the model of the layers names
// with every width at the narrowest, measured with measure; it takes any
// latency budget (narrower weights need not run faster).
func checkFloor(b Budget, names []string, measure func(Assignment) (float64, error)) error {
	if b.Metric != MetricBytes {
		return nil
	}
	narrowest := Widths[len(Widths)-1]
	low := Uniform(names, narrowest, narrowest)
	v, err := measure(low)
	if err != nil {
		return err
	}
	if b.Limit < v {
		return fmt.Errorf("autobits: budget %s is below the smallest achievable, %s with every layer at %s: %w",
			b, formatValue(b.Metric, v), low, ErrUnreachable)
	}
	return nil
}
