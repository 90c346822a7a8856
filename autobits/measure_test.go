package autobits

import (
	"slices"
	"testing"
)

// The median of an odd count is the middle value, of an even count the
// mean of the middle two; the input keeps its order.
func TestMedian(t *testing.T) {
	odd, even := []float64{3, 1, 2}, []float64{4, 1, 3, 2}
	if got := median(odd); got != 2 {
		t.Errorf("median(3, 1, 2) = %v, want 2", got)
	}
	if got := median(even); got != 2.5 {
		t.Errorf("median(4, 1, 3, 2) = %v, want 2.5", got)
	}
	if !slices.Equal(odd, []float64{3, 1, 2}) || !slices.Equal(even, []float64{4, 1, 3, 2}) {
		t.Errorf("median reordered its input: %v %v", odd, even)
	}
}
