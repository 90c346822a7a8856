// Package metrics holds the classification metrics shared by the float
// evaluation (package train) and the int8 one (package infer), so that
// both rank classes by one rule.
//
// A sample's classes are ranked by score, highest first; equal scores
// rank by class index, lowest first; NaN ranks above every number (so a
// model that produces NaN is not credited by accident: a NaN logit wins,
// and is wrong unless it is the label's). A sample is correct at k when
// its label's rank is below k: at k = 1 that is the first largest score,
// the argmax.
package metrics

import "fmt"

// Score is a class score: a float logit or an integer output code.
type Score interface {
	~float32 | ~uint8
}

// before reports whether score a of class i ranks before score b of
// class j.
func before[T Score](a, b T, i, j int) bool {
	an, bn := a != a, b != b // NaN (never for integer scores)
	switch {
	case an != bn:
		return an
	case an || a == b:
		return i < j
	}
	return a > b
}

// Rank returns the rank of class label among the scores of one sample
// (0: first).
func Rank[T Score](scores []T, label int) int {
	r := 0
	for j, v := range scores {
		if j != label && before(v, scores[label], j, label) {
			r++
		}
	}
	return r
}

// CorrectAt returns, for scores [len(labels), classes] row-major, the
// number of samples whose label ranks below k, for each k of ks. A
// length mismatch or a label outside [0, classes) is a programmer error
// and panics.
func CorrectAt[T Score](scores []T, labels []int, classes int, ks ...int) []int {
	if classes < 1 || len(scores) != len(labels)*classes {
		panic(fmt.Sprintf("metrics: %d scores for %d samples of %d classes", len(scores), len(labels), classes))
	}
	n := make([]int, len(ks))
	for i, label := range labels {
		if label < 0 || label >= classes {
			panic(fmt.Sprintf("metrics: label %d of sample %d outside [0, %d)", label, i, classes))
		}
		r := Rank(scores[i*classes:(i+1)*classes], label)
		for x, k := range ks {
			if r < k {
				n[x]++
			}
		}
	}
	return n
}
