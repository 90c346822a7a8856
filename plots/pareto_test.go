package plots

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ParetoFront keeps the points no other beats, by increasing cost. The
// expected front is worked by hand: b (cost 1, 90%) is beaten by a (cost
// 1, 95%); d (cost 3, 94%) by a; e equals c and comes later.
func TestParetoFront(t *testing.T) {
	pts := []Point{
		{Label: "a", X: 1, Y: 0.95}, {Label: "b", X: 1, Y: 0.90}, {Label: "c", X: 2, Y: 0.97},
		{Label: "d", X: 3, Y: 0.94}, {Label: "e", X: 2, Y: 0.97}, {Label: "f", X: 5, Y: 0.99},
	}
	if got := ParetoFront(pts); !slices.Equal(got, []int{0, 2, 5}) {
		t.Errorf("front %v, want [0 2 5] (a, c, f)", got)
	}
	if got := ParetoFront(nil); len(got) != 0 {
		t.Errorf("front of nothing: %v", got)
	}
}

func TestPareto(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "pareto")
	paths, err := Pareto(base, "Accuracy against size", "int8 model file (bytes)", []PointSeries{
		{Label: "uniform", Points: []Point{{Label: "#1", X: 80000, Y: 0.98}, {Label: "#2", X: 40000, Y: 0.97}}},
		{Label: "candidates", Points: []Point{{Label: "#3", X: 39000, Y: 0.975}, {X: 41000, Y: 0.5}}},
		{Label: "fine-tuned", Points: []Point{{Label: "QAT", X: 39500, Y: 0.99}}, OffFront: true},
		{Label: "empty"},
	})
	if err != nil {
		t.Fatal(err)
	}
	svg := checkFigures(t, paths, []string{base}, Width, Height)[base]
	for _, s := range []string{"Accuracy against size", "int8 model file (bytes)", "Pareto front", "uniform", "candidates", "#3", "fine-tuned", "QAT", ">40000<"} {
		if !strings.Contains(svg, s) {
			t.Errorf("pareto figure lacks %q", s)
		}
	}
	// Points all off the front draw no front.
	paths, err = Pareto(base, "t", "x", []PointSeries{{Label: "s", Points: []Point{{X: 1, Y: 1}}, OffFront: true}})
	if err != nil {
		t.Fatal(err)
	}
	if svg := checkFigures(t, paths, []string{base}, Width, Height)[base]; strings.Contains(svg, "Pareto front") {
		t.Error("a figure of points off the front has a front")
	}
	for name, err := range map[string]error{
		"no points":  second(Pareto(base, "t", "x", []PointSeries{{Label: "s"}})),
		"NaN":        second(Pareto(base, "t", "x", []PointSeries{{Label: "s", Points: []Point{{X: math.NaN(), Y: 1}}}})),
		"infinite y": second(Pareto(base, "t", "x", []PointSeries{{Label: "s", Points: []Point{{X: 1, Y: math.Inf(1)}}}})),
	} {
		if err == nil || !strings.Contains(err.Error(), base) {
			t.Errorf("%s: error %v, want one naming %s", name, err, base)
		}
	}
}
