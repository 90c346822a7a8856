package data

import (
	"fmt"
	"iter"
	"math/bits"
	"math/rand/v2"
)

// Permutation fills dst with a permutation of 0..len(dst)-1 determined by
// seed and epoch alone. It shuffles the identity by Fisher-Yates, drawing
// j uniformly from [0, i] for i = len(dst)-1 down to 1 by Lemire's
// multiply-and-reject method, from a math/rand/v2 PCG seeded with
// (seed, epoch). Both algorithms are fixed here rather than taken from
// rand.Shuffle, so an order depends on nothing but seed and epoch.
func Permutation(dst []int, seed uint64, epoch int) {
	for i := range dst {
		dst[i] = i
	}
	src := rand.NewPCG(seed, uint64(epoch))
	for i := len(dst) - 1; i > 0; i-- {
		j := uniform(src, uint64(i)+1)
		dst[i], dst[j] = dst[j], dst[i]
	}
}

// uniform returns a uniform random integer in [0, n), n > 0, from src by
// Lemire's method ("Fast random integer generation in an interval", 2019).
func uniform(src *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(src.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(src.Uint64(), n)
		}
	}
	return hi
}

// Batches splits the indices 0..N-1 of a dataset into batches, epoch by
// epoch: in order, or shuffled by Permutation(seed, epoch) so that each
// epoch has its own reproducible order. Every index is in exactly one
// batch of an epoch, except that with dropLast the last N mod size indices
// of the order are left out. A Batches is not safe for concurrent use.
type Batches struct {
	n, size           int
	seed              uint64
	shuffle, dropLast bool
	order             []int
}

// NewBatches returns batches of size indices over 0..n-1. A size below 1
// or a negative n panics.
func NewBatches(n int, seed uint64, size int, shuffle, dropLast bool) *Batches {
	if n < 0 {
		panic(fmt.Sprintf("data: negative sample count %d", n))
	}
	if size < 1 {
		panic(fmt.Sprintf("data: batch size %d is not positive", size))
	}
	return &Batches{n: n, size: size, seed: seed, shuffle: shuffle, dropLast: dropLast, order: make([]int, n)}
}

// Batches returns the batches of d's samples; see NewBatches.
func (d *Dataset) Batches(seed uint64, size int, shuffle, dropLast bool) *Batches {
	return NewBatches(d.N, seed, size, shuffle, dropLast)
}

// Len returns the number of batches in an epoch.
func (b *Batches) Len() int {
	if b.dropLast {
		return b.n / b.size
	}
	return (b.n + b.size - 1) / b.size
}

// Epoch returns the batches of epoch (counted from 0; negative panics) as
// (batch number, indices) pairs:
//
//	for i, idx := range batches.Epoch(e) {
//		ds.Fill(x[:len(idx)*size], y[:len(idx)], idx, norm)
//	}
//
// The index slices are views into a buffer owned by b, allocated once by
// NewBatches: read them, do not modify them, and do not keep them past the
// next call to Epoch, which rewrites the buffer.
func (b *Batches) Epoch(epoch int) iter.Seq2[int, []int] {
	if epoch < 0 {
		panic(fmt.Sprintf("data: negative epoch %d", epoch))
	}
	if b.shuffle {
		Permutation(b.order, b.seed, epoch)
	} else {
		for i := range b.order {
			b.order[i] = i
		}
	}
	nb := b.Len()
	return func(yield func(int, []int) bool) {
		for i := range nb {
			lo, hi := i*b.size, min((i+1)*b.size, b.n)
			if !yield(i, b.order[lo:hi:hi]) {
				return
			}
		}
	}
}
