package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

func TestRank(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		scores []float32
		label  int
		want   int
	}{
		{[]float32{0.1, 0.7, 0.2}, 1, 0},
		{[]float32{0.1, 0.7, 0.2}, 2, 1},
		{[]float32{0.1, 0.7, 0.2}, 0, 2},
		// Ties rank by index: the first largest is the argmax.
		{[]float32{0.5, 0.5, 0.5}, 0, 0},
		{[]float32{0.5, 0.5, 0.5}, 2, 2},
		// NaN ranks first.
		{[]float32{1, nan, 2}, 2, 1},
		{[]float32{1, nan, 2}, 1, 0},
		{[]float32{nan, nan}, 1, 1},
	} {
		if got := Rank(c.scores, c.label); got != c.want {
			t.Errorf("Rank(%v, %d) = %d, want %d", c.scores, c.label, got, c.want)
		}
	}
	if got := Rank([]uint8{3, 9, 9, 1}, 2); got != 1 {
		t.Errorf("codes: rank %d, want 1", got)
	}
}

// CorrectAt agrees with a sort of each row by the rule (a stable sort by
// descending score keeps index order among ties).
func TestCorrectAtMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, classes = 200, 7
	scores := make([]uint8, n*classes)
	labels := make([]int, n)
	for i := range scores {
		scores[i] = uint8(rng.IntN(4)) // many ties
	}
	want := make([]int, classes+1)
	for i := range labels {
		labels[i] = rng.IntN(classes)
		row := scores[i*classes : (i+1)*classes]
		order := []int{0, 1, 2, 3, 4, 5, 6}
		sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
		r := slices.Index(order, labels[i])
		for k := r + 1; k <= classes; k++ {
			want[k]++
		}
	}
	got := CorrectAt(scores, labels, classes, 1, 5, classes)
	if got[0] != want[1] || got[1] != want[5] || got[2] != n || want[classes] != n {
		t.Errorf("CorrectAt = %v, want [%d %d %d]", got, want[1], want[5], n)
	}
}
