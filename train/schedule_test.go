package train

import (
	"math"
	"strings"
	"testing"
)

// TestSchedulesMatchPyTorch compares LR with the learning rates PyTorch's
// schedulers produce when scheduler.step() is called after every optimizer
// step (testdata/gen_optim.py). PyTorch updates the lr recursively
// (multiplying by gamma, or by a ratio of cosines), while LR uses the closed
// form, so the two agree to rounding: the tolerance is 1e-12 relative to the
// base lr.
func TestSchedulesMatchPyTorch(t *testing.T) {
	r := loadRef(t)
	for _, sc := range r.Schedules {
		t.Run(sc.Name, func(t *testing.T) {
			if err := sc.Config.Validate(); err != nil {
				t.Fatal(err)
			}
			if len(sc.LRs) != sc.Total {
				t.Fatalf("%d lrs for %d steps", len(sc.LRs), sc.Total)
			}
			var worst float64
			for s, want := range sc.LRs {
				got := sc.Config.LR(sc.BaseLR, s, sc.Total)
				d := math.Abs(got-want) / sc.BaseLR
				worst = math.Max(worst, d)
				if d > 1e-12 {
					t.Errorf("step %d: LR = %.17g, PyTorch %.17g", s, got, want)
				}
			}
			t.Logf("max |LR - PyTorch| / base = %.3g", worst)
		})
	}
}

func TestScheduleHand(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-15*math.Max(1, math.Abs(b)) }
	cases := []struct {
		cfg   ScheduleConfig
		base  float64
		total int
		want  []float64
	}{
		{ScheduleConfig{}, 0.5, 3, []float64{0.5, 0.5, 0.5}},
		{ScheduleConfig{Kind: "constant", WarmupSteps: 4}, 1, 6, []float64{0.25, 0.5, 0.75, 1, 1, 1}},
		{ScheduleConfig{Kind: "step", StepSize: 2}, 1, 7, []float64{1, 1, 0.1, 0.1, 0.01, 0.01, 0.001}},
		{ScheduleConfig{Kind: "step", StepSize: 3, Gamma: 0.5, WarmupSteps: 2}, 8, 9, []float64{4, 8, 8, 8, 8, 4, 4, 4, 2}},
		// T = 4: cos(0), cos(pi/4), cos(pi/2), cos(3pi/4)
		{ScheduleConfig{Kind: "cosine"}, 2, 4, []float64{2, 1 + math.Sqrt2/2, 1, 1 - math.Sqrt2/2}},
		{ScheduleConfig{Kind: "cosine", MinLR: 1}, 3, 2, []float64{3, 2}},
		{ScheduleConfig{Kind: "cosine", WarmupSteps: 2}, 1, 4, []float64{0.5, 1, 1, 0.5}},
	}
	for _, c := range cases {
		if err := c.cfg.Validate(); err != nil {
			t.Fatalf("%+v: %v", c.cfg, err)
		}
		for s, want := range c.want {
			if got := c.cfg.LR(c.base, s, c.total); !near(got, want) {
				t.Errorf("%+v: LR(%v, %d, %d) = %v, want %v", c.cfg, c.base, s, c.total, got, want)
			}
		}
	}
	// Edges: cosine clamps to MinLR at and after total; negative s is 0.
	cos := ScheduleConfig{Kind: "cosine", MinLR: 0.01}
	for _, s := range []int{10, 11, 100} {
		if got := cos.LR(1, s, 10); got != 0.01 {
			t.Errorf("cosine LR(1, %d, 10) = %v, want MinLR", s, got)
		}
	}
	if got := cos.LR(1, -3, 10); got != 1 {
		t.Errorf("cosine LR(1, -3, 10) = %v, want 1", got)
	}
	// Warmup longer than the run: warmup only, then MinLR.
	w := ScheduleConfig{Kind: "cosine", WarmupSteps: 4}
	if got := w.LR(1, 3, 3); got != 1 {
		t.Errorf("LR in warmup = %v", got)
	}
	if got := w.LR(1, 4, 3); got != 0 {
		t.Errorf("LR after warmup with T <= 0 = %v, want MinLR", got)
	}
	// Cosine decreases monotonically within the run.
	prev := math.Inf(1)
	for s := 0; s < 1000; s++ {
		lr := cos.LR(1, s, 1000)
		if lr > prev || lr < 0.01 {
			t.Fatalf("cosine not monotone in [MinLR, base] at step %d: %v after %v", s, lr, prev)
		}
		prev = lr
	}
}

func TestScheduleValidate(t *testing.T) {
	bad := []struct {
		cfg   ScheduleConfig
		field string
	}{
		{ScheduleConfig{Kind: "linear"}, "Kind"},
		{ScheduleConfig{Kind: "step"}, "StepSize"},
		{ScheduleConfig{Kind: "step", StepSize: -1}, "StepSize"},
		{ScheduleConfig{Kind: "step", StepSize: 1, Gamma: -0.5}, "Gamma"},
		{ScheduleConfig{Kind: "step", StepSize: 1, Gamma: math.NaN()}, "Gamma"},
		{ScheduleConfig{Kind: "step", StepSize: 1, MinLR: 0.1}, "MinLR"},
		{ScheduleConfig{Kind: "cosine", MinLR: -1}, "MinLR"},
		{ScheduleConfig{Kind: "cosine", MinLR: math.Inf(1)}, "MinLR"},
		{ScheduleConfig{Kind: "cosine", StepSize: 3}, "StepSize"},
		{ScheduleConfig{Gamma: 0.5}, "Gamma"},
		{ScheduleConfig{WarmupSteps: -1}, "WarmupSteps"},
	}
	for _, c := range bad {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "."+c.field+" ") {
			t.Errorf("%+v: Validate() = %v, want error naming %s", c.cfg, err, c.field)
		}
	}
	for _, c := range []ScheduleConfig{
		{}, {Kind: "constant", WarmupSteps: 10}, {Kind: "step", StepSize: 1}, {Kind: "step", StepSize: 5, Gamma: 2},
		{Kind: "cosine"}, {Kind: "cosine", MinLR: 1e-5, WarmupSteps: 100},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
