// Package golden loads qat's conformance vectors: PyTorch 1.13's fake
// quantization, its gradients and its observers, in the JSON format of
// testdata/README.md. The vectors in testdata are embedded; Load also reads
// every *.json in the directory named by $QAT_GOLDEN_DIR when it is set.
package golden

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"qat/quant"
)

//go:embed testdata/*.json
var embedded embed.FS

// Ops are the case kinds the format defines.
var Ops = []string{
	"fake_quant_per_tensor",
	"fake_quant_per_channel",
	"learnable_fake_quant_per_tensor",
	"learnable_fake_quant_per_channel",
	"observer_minmax",
	"observer_moving_average_minmax",
	"observer_per_channel_minmax",
}

// Case is one conformance vector. Float arrays are float32 values.
type Case struct {
	File string `json:"-"` // where the case was read from
	Name string `json:"name"`
	Op   string `json:"op"`
	Note string `json:"note"`

	Shape    []int `json:"shape"`
	QuantMin int32 `json:"quant_min"`
	QuantMax int32 `json:"quant_max"`
	Axis     int   `json:"axis"`

	X         []float32 `json:"x"`
	Scale     []float32 `json:"scale"`
	ZeroPoint []float64 `json:"zero_point"` // integers, but floats for learnable cases
	GradY     []float32 `json:"grad_y"`

	Y             []float32 `json:"y"`
	Q             []int32   `json:"q"`
	GradX         []float32 `json:"grad_x"`
	GradScale     []float32 `json:"grad_scale"`
	GradZeroPoint []float32 `json:"grad_zero_point"`
	GradFactor    float32   `json:"grad_factor"`

	Batches           [][]float32 `json:"batches"`
	Symmetric         bool        `json:"symmetric"`
	Signed            bool        `json:"signed"`
	AveragingConstant *float32    `json:"averaging_constant"`
}

// ID names the case in test output.
func (c *Case) ID() string { return c.File + ":" + c.Name }

// ZeroPoints returns the zero points as int32, for the cases that hold
// integers.
func (c *Case) ZeroPoints() []int32 {
	z := make([]int32, len(c.ZeroPoint))
	for i, v := range c.ZeroPoint {
		z[i] = int32(v)
	}
	return z
}

// Scheme returns the quant.Scheme of an observer case: the bits, signedness
// and narrow range read off quant_min and quant_max, per channel along Axis
// when Axis >= 0. It fails t when no scheme has that code range.
func (c *Case) Scheme(t testing.TB) quant.Scheme {
	t.Helper()
	s := quant.Scheme{Signed: c.Signed, Symmetric: c.Symmetric, PerChannel: c.Axis >= 0}
	if s.PerChannel {
		s.Axis = c.Axis
	}
	levels := int64(c.QuantMax) + 1
	if c.Signed {
		levels *= 2
		s.NarrowRange = c.QuantMin == -c.QuantMax
	}
	for b := 2; b <= 8; b++ {
		if int64(1)<<b == levels {
			s.Bits = b
		}
	}
	if s.Bits == 0 || s.QMin() != c.QuantMin || s.QMax() != c.QuantMax {
		t.Fatalf("%s: no scheme has codes [%d, %d] (signed %v)", c.ID(), c.QuantMin, c.QuantMax, c.Signed)
	}
	return s
}

// Params returns the case's fixed params (integer zero points), per tensor
// when Axis < 0.
func (c *Case) Params() quant.Params {
	return quant.Params{Scale: c.Scale, ZeroPoint: c.ZeroPoints(), QMin: c.QuantMin, QMax: c.QuantMax, Axis: c.Axis}
}

// LearnedParams returns the params a learnable case's forward pass uses:
// its float zero points rounded half to even and clamped.
func (c *Case) LearnedParams() quant.Params {
	p := c.Params()
	for i, z := range c.ZeroPoint {
		p.ZeroPoint[i] = quant.RoundZeroPoint(float32(z), c.QuantMin, c.QuantMax)
	}
	return p
}

type file struct {
	Source string  `json:"source"`
	Cases  []*Case `json:"cases"`
}

// Set is the cases read from one directory.
type Set struct {
	Dir   string
	Cases []*Case
}

// Sets returns the embedded cases and those of $QAT_GOLDEN_DIR, failing t
// on any unreadable file or unknown op, and logs how many came from where.
func Sets(t testing.TB) []Set {
	t.Helper()
	own, err := load(embedded, "testdata", "embedded testdata")
	if err != nil {
		t.Fatal(err)
	}
	sets := []Set{own}
	if dir := os.Getenv("QAT_GOLDEN_DIR"); dir != "" {
		extra, err := load(os.DirFS(dir), ".", dir)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, extra)
	}
	for _, s := range sets {
		t.Logf("golden: %d cases from %s", len(s.Cases), s.Dir)
	}
	return sets
}

func load(fsys fs.FS, dir, name string) (Set, error) {
	paths, err := fs.Glob(fsys, filepath.ToSlash(filepath.Join(dir, "*.json")))
	if err != nil {
		return Set{}, err
	}
	if len(paths) == 0 {
		return Set{}, fmt.Errorf("golden: no *.json in %s", name)
	}
	sort.Strings(paths)
	set := Set{Dir: name}
	for _, p := range paths {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return Set{}, fmt.Errorf("golden: %w", err)
		}
		var f file
		if err := json.Unmarshal(b, &f); err != nil {
			return Set{}, fmt.Errorf("golden: %s: %w", p, err)
		}
		for i, c := range f.Cases {
			c.File = filepath.Base(p)
			if err := c.check(); err != nil {
				return Set{}, fmt.Errorf("golden: %s case %d (%s): %w", p, i, c.Name, err)
			}
		}
		set.Cases = append(set.Cases, f.Cases...)
	}
	return set, nil
}

func (c *Case) check() error {
	known := false
	for _, op := range Ops {
		known = known || op == c.Op
	}
	if !known {
		return fmt.Errorf("unknown op %q", c.Op)
	}
	if c.QuantMin >= c.QuantMax {
		return fmt.Errorf("empty range [%d, %d]", c.QuantMin, c.QuantMax)
	}
	return nil
}

// ULPDiff returns how many float32 steps lie between a and b.
func ULPDiff(a, b float32) int64 {
	ia, ib := orderedBits(a), orderedBits(b)
	if ia > ib {
		return ia - ib
	}
	return ib - ia
}

func orderedBits(f float32) int64 {
	b := int64(int32(math.Float32bits(f)))
	if b < 0 {
		b = math.MinInt32 - b
	}
	return b
}

// RelClose reports whether got is within rel of want, relative to
// max(|want|, floor): the tolerance for gradients that are sums.
func RelClose(got, want, rel, floor float64) bool {
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), floor)
}

// SumBounds returns, per channel, upper bounds of the sums of absolute
// terms that make up grad_scale and grad_zero_point (see ste's package doc):
// with g the gradient factor, a scale term is at most |dy|*g*m, where m is
// 0.5 in range (|y-x|/s <= 1/2) and |qmin-z| or |qmax-z| outside it, and a
// zero-point term at most |dy|*s*g.
func (c *Case) SumBounds(p quant.Params) (scale, zp []float64) {
	scale, zp = make([]float64, len(p.Scale)), make([]float64, len(p.Scale))
	g := float64(c.GradFactor)
	quant.LayoutOf(p, c.Shape, len(c.X)).ForEachRun(len(c.X), func(ch, lo, hi int) {
		z := float64(p.ZeroPoint[ch])
		m := math.Max(0.5, math.Max(math.Abs(float64(p.QMin)-z), math.Abs(float64(p.QMax)-z)))
		for _, dy := range c.GradY[lo:hi] {
			scale[ch] += math.Abs(float64(dy)) * g * m
			zp[ch] += math.Abs(float64(dy)) * float64(p.Scale[ch]) * g
		}
	})
	return scale, zp
}

// CheckSums compares parameter gradients, sums that PyTorch accumulates in
// float32 in an order of its own, with relative tolerance 1e-5. The absolute
// floor is the channel's bound b of the sum of |terms|: float32 summation of
// n terms may be off by up to about n*2^-24*b whatever the result, which for
// the at most a few dozen elements per channel of these vectors stays below
// 1e-5*b. Without the floor a sum that cancels to near zero could not be
// compared relatively at all. It is the one rule of every package's
// golden tests for such sums (ste, fakequant).
func CheckSums(t testing.TB, what string, got, want []float32, bound []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	for i := range want {
		if !RelClose(float64(got[i]), float64(want[i]), 1e-5, bound[i]) {
			t.Errorf("%s[%d] = %g, want %g (floor %g)", what, i, got[i], want[i], bound[i])
		}
	}
}
