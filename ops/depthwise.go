package ops

import "qat/internal/par"

// A depthwise convolution (groups = C = O: each output channel reads its
// own input channel) through the GEMM path costs one GEMM of a single
// output row and KH*KW terms per group and sample, too small for the
// GEMM's tiles and packing to pay. For the 3×3 kernels of MobileNets the
// loops below compute it directly instead, on a zero-padded copy of each
// [H, W] plane: 1.3 to 2.1 times faster than the GEMMs, forward and
// gradients, on MobileNetV2's 96 and 144-channel 16x16 layers at batch 32
// (BenchmarkConv2dDepthwise). Other kernel sizes take the GEMM path.
//
// Planes are independent, so the forward and dX split them across
// goroutines and dW splits the channels, each channel's sums made by one
// goroutine in the single-threaded order: the results are the same for
// every thread count. Each goroutine keeps its padded plane in the op's
// column scratch.

// direct3x3 reports whether the loops below compute g: a depthwise
// convolution with a 3×3 kernel.
func (g geom) direct3x3() bool { return g.depthwise() && g.kh == 3 && g.kw == 3 }

// padPlane copies the [h, w] plane src into the middle of dst,
// [h+2p, w+2p], and zeroes dst's border.
func padPlane(dst, src []float32, h, w, p int) {
	pw := w + 2*p
	clear(dst[:p*pw])
	for r := range h {
		row := dst[(r+p)*pw : (r+p+1)*pw]
		clear(row[:p])
		copy(row[p:p+w], src[r*w:(r+1)*w])
		clear(row[p+w:])
	}
	clear(dst[(h+p)*pw:])
}

// depthwise3x3 writes the depthwise convolution y [N, C, OH, OW] of x
// [N, C, H, W] with w [C, 1, 3, 3], of geometry g (direct3x3). Each output
// is the float32 sum, in row-major tap order, of its nine products, the
// padding's zeros among them, as the GEMM path sums im2col's; at stride 1
// the window slides along the row, each step loading one new column.
func depthwise3x3(y, x, w []float32, g geom, pads *scratches) {
	hw, ohw := g.h*g.w, g.ohw()
	pw := g.w + 2*g.p
	workers := par.Workers(g.n*g.c, ohw*9, par.MinWork)
	pads.grow(workers)
	par.For(g.n*g.c, workers, func(wi, lo, hi int) {
		xpad := (*pads)[wi].get((g.h + 2*g.p) * pw)
		for p := lo; p < hi; p++ {
			c := p % g.c
			padPlane(xpad, x[p*hw:(p+1)*hw], g.h, g.w, g.p)
			wc := w[c*9 : c*9+9 : c*9+9]
			w0, w1, w2, w3, w4, w5, w6, w7, w8 := wc[0], wc[1], wc[2], wc[3], wc[4], wc[5], wc[6], wc[7], wc[8]
			yp := y[p*ohw : (p+1)*ohw]
			for oh := range g.oh {
				yr := yp[oh*g.ow : (oh+1)*g.ow]
				b, n := oh*g.s*pw, (len(yr)-1)*g.s+3 // the rows' first input column and extent
				r0, r1, r2 := xpad[b:b+n], xpad[b+pw:b+pw+n], xpad[b+2*pw:b+2*pw+n]
				if g.s == 1 {
					x00, x01, x10, x11, x20, x21 := r0[0], r0[1], r1[0], r1[1], r2[0], r2[1]
					for i := range yr {
						x02, x12, x22 := r0[i+2], r1[i+2], r2[i+2]
						v := w0 * x00
						v += w1 * x01
						v += w2 * x02
						v += w3 * x10
						v += w4 * x11
						v += w5 * x12
						v += w6 * x20
						v += w7 * x21
						v += w8 * x22
						yr[i] = v
						x00, x01, x10, x11, x20, x21 = x01, x02, x11, x12, x21, x22
					}
					continue
				}
				for i := range yr {
					j := i * g.s
					a0, a1, a2 := r0[j:j+3:j+3], r1[j:j+3:j+3], r2[j:j+3:j+3]
					v := w0 * a0[0]
					v += w1 * a0[1]
					v += w2 * a0[2]
					v += w3 * a1[0]
					v += w4 * a1[1]
					v += w5 * a1[2]
					v += w6 * a2[0]
					v += w7 * a2[1]
					v += w8 * a2[2]
					yr[i] = v
				}
			}
		}
	})
}

// depthwise3x3GradX writes dX [N, C, H, W] of a depthwise 3×3 convolution
// with w from the output gradient dy, of geometry g (direct3x3), the
// adjoint of depthwise3x3: each output scatters its nine products
// w[kh, kw]*dY into a zeroed padded plane, whose middle is dX. Each input
// so sums its products in float32 in the order of the outputs it fed
// (row-major), whatever the stride.
func depthwise3x3GradX(dx, w, dy []float32, g geom, pads *scratches) {
	hw, ohw := g.h*g.w, g.ohw()
	pw := g.w + 2*g.p
	workers := par.Workers(g.n*g.c, ohw*9, par.MinWork)
	pads.grow(workers)
	par.For(g.n*g.c, workers, func(wi, lo, hi int) {
		d := (*pads)[wi].get((g.h + 2*g.p) * pw)
		for p := lo; p < hi; p++ {
			c := p % g.c
			clear(d)
			wc := w[c*9 : c*9+9 : c*9+9]
			dyp := dy[p*ohw : (p+1)*ohw]
			for oh := range g.oh {
				dyr := dyp[oh*g.ow : (oh+1)*g.ow]
				b, n := oh*g.s*pw, (len(dyr)-1)*g.s+3
				r0, r1, r2 := d[b:b+n], d[b+pw:b+pw+n], d[b+2*pw:b+2*pw+n]
				for i, v := range dyr {
					j := i * g.s
					a0, a1, a2 := r0[j:j+3:j+3], r1[j:j+3:j+3], r2[j:j+3:j+3]
					a0[0] += wc[0] * v
					a0[1] += wc[1] * v
					a0[2] += wc[2] * v
					a1[0] += wc[3] * v
					a1[1] += wc[4] * v
					a1[2] += wc[5] * v
					a2[0] += wc[6] * v
					a2[1] += wc[7] * v
					a2[2] += wc[8] * v
				}
			}
			dxp := dx[p*hw : (p+1)*hw]
			for r := range g.h {
				copy(dxp[r*g.w:(r+1)*g.w], d[(r+g.p)*pw+g.p:])
			}
		}
	})
}

// depthwise3x3GradW writes dW [C, 1, 3, 3] of a depthwise 3×3
// convolution of x from the output gradient dy, of geometry g
// (direct3x3): dW[c, kh, kw] is the sum over samples (in order) and
// outputs (in row-major order) of dY times the input pixel the tap meets
// (0 in the padding), accumulated in float64; at stride 1 the window
// slides as in depthwise3x3.
func depthwise3x3GradW(dw, x, dy []float32, g geom, pads *scratches) {
	hw, ohw := g.h*g.w, g.ohw()
	pw := g.w + 2*g.p
	workers := par.Workers(g.c, g.n*ohw*9, par.MinWork)
	pads.grow(workers)
	par.For(g.c, workers, func(wi, lo, hi int) {
		xpad := (*pads)[wi].get((g.h + 2*g.p) * pw)
		for c := lo; c < hi; c++ {
			var s0, s1, s2, s3, s4, s5, s6, s7, s8 float64
			for n := range g.n {
				p := n*g.c + c
				padPlane(xpad, x[p*hw:(p+1)*hw], g.h, g.w, g.p)
				dyp := dy[p*ohw : (p+1)*ohw]
				for oh := range g.oh {
					dyr := dyp[oh*g.ow : (oh+1)*g.ow]
					b, m := oh*g.s*pw, (len(dyr)-1)*g.s+3
					r0, r1, r2 := xpad[b:b+m], xpad[b+pw:b+pw+m], xpad[b+2*pw:b+2*pw+m]
					if g.s == 1 {
						x00, x01, x10, x11, x20, x21 := float64(r0[0]), float64(r0[1]), float64(r1[0]), float64(r1[1]), float64(r2[0]), float64(r2[1])
						for i, v := range dyr {
							x02, x12, x22 := float64(r0[i+2]), float64(r1[i+2]), float64(r2[i+2])
							d := float64(v)
							s0 += d * x00
							s1 += d * x01
							s2 += d * x02
							s3 += d * x10
							s4 += d * x11
							s5 += d * x12
							s6 += d * x20
							s7 += d * x21
							s8 += d * x22
							x00, x01, x10, x11, x20, x21 = x01, x02, x11, x12, x21, x22
						}
						continue
					}
					for i, v := range dyr {
						j := i * g.s
						a0, a1, a2 := r0[j:j+3:j+3], r1[j:j+3:j+3], r2[j:j+3:j+3]
						d := float64(v)
						s0 += d * float64(a0[0])
						s1 += d * float64(a0[1])
						s2 += d * float64(a0[2])
						s3 += d * float64(a1[0])
						s4 += d * float64(a1[1])
						s5 += d * float64(a1[2])
						s6 += d * float64(a2[0])
						s7 += d * float64(a2[1])
						s8 += d * float64(a2[2])
					}
				}
			}
			for k, v := range [9]float64{s0, s1, s2, s3, s4, s5, s6, s7, s8} {
				dw[c*9+k] = float32(v)
			}
		}
	})
}
