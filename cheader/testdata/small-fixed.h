/* Int8 model "small" (format qat-int8/2) as a C99 header, written by
 * qat's qmodel package; do not edit. docs/int8-model.md specifies the
 * format and the arithmetic.
 *
 * Graph, one line per op, per-sample shapes [C,H,W] or [N] of uint8 codes:
 *   input [1,6,6], scale 0.012728, zero_point 33, qmin 0, qmax 255
 *   0 conv c1: [1,6,6] -> [3,6,6], kernel 3 stride 1 padding 1, 2-bit weights,
 *       output scale 0.0235, zero_point 7, qmin 0, qmax 255, clamp [7,255]
 *   1 relu6 r6: [3,6,6] -> [3,6,6], clamp [7,200]
 *   2 maxpool pool1: [3,6,6] -> [3,3,3], kernel 2 stride 2
 *   3 avgpool pool2: [3,3,3] -> [3,2,2], kernel 2 stride 1
 *   4 flatten flat: [3,2,2] -> [12]
 *   5 linear head.fc: [12] -> [3], 4-bit weights,
 *       output scale 0.171, zero_point 120, qmin 0, qmax 255, clamp [0,255]
 *
 * Below, NAME stands for the macro MY_NET_V2_NAME, and an op's NAME for
 * MY_NET_V2_OP_NAME (MY_NET_V2_C1_KERNEL: KERNEL of op c1); w, bias, ... are the
 * op's arrays (my_net_v2_c1_weight).
 *
 * Arithmetic. Codes are uint8; float operations are IEEE-754 binary32,
 * each rounded to float (no x87 extended precision, no contraction into
 * fused multiply-adds, no fast-math). round_half_even(y) is nearbyintf or
 * lrintf in the default rounding mode. clamp(v, lo, hi) = min(max(v, lo), hi).
 *
 * Input, pixel p in [0,255] of the [C,H,W] image, row-major:
 *   x = ((float)p / 255.0f - NORM_MEAN) / NORM_STD   (no division if NORM_STD is 0)
 *   q = clamp(round_half_even(x * (1.0f / INPUT_SCALE)) + INPUT_ZERO_POINT,
 *             INPUT_QMIN, INPUT_QMAX)
 *   (y = x * (1.0f / INPUT_SCALE) may be clamped to [-256, 256] before
 *   rounding: this does not change q.)
 *
 * conv, output channel o, position (y, x), zp_in = the input's zero point:
 *   acc = sum over c < IN, ky < KERNEL, kx < KERNEL of
 *         (in[c][y*STRIDE-PADDING+ky][x*STRIDE-PADDING+kx] - zp_in) * w[o][c][ky][kx]
 *   positions outside the input hold zp_in (contribute 0).
 * linear, output o: acc = sum over i < IN of (in[i] - zp_in) * w[o][i]
 *   w is row-major [OUT][IN][KERNEL][KERNEL] or [OUT][IN]. acc + bias[o]
 *   fits in int32 for every input (the model guarantees it).
 *
 * Requantization (REQUANT_FIXED, gemmlowp), per output channel o, with
 * M = fixed_multiplier[o] in [2^30, 2^31) and S = shift[o] in [-31, 62]:
 *   int64_t x = acc + bias[o], r = S;
 *   if (S < 0) { x = x * ((int64_t)1 << -S); saturate x to [INT32_MIN, INT32_MAX]; r = 0; }
 *   int64_t ab = x * M;                                  (SaturatingRoundingDoublingHighMul)
 *   int64_t y = (ab + (ab >= 0 ? (1 << 30) : 1 - (1 << 30))) / ((int64_t)1 << 31);
 *                                                        (C division: truncates toward zero)
 *   int64_t mask = ((int64_t)1 << r) - 1;                (RoundingDivideByPOT, half away from 0)
 *   int64_t z = (y >> r) + ((y & mask) > (mask >> 1) + (y < 0));   (>> is arithmetic)
 *   q = clamp(z + OUT_ZERO_POINT, CLAMP_MIN, CLAMP_MAX)
 *   CLAMP_MIN/CLAMP_MAX fuse the activation (QMIN/QMAX when there is none).
 *
 * maxpool: q = the largest code of the KERNELxKERNEL window at
 *   (y*STRIDE, x*STRIDE) of each channel (no padding).
 * avgpool: s = sum of the window's codes, n = KERNEL*KERNEL; q = s/n
 *   rounded half to even: d = s / n, r = s % n,
 *   q = d + (2*r > n || (2*r == n && d % 2 == 1)).
 * flatten: no data movement ([C,H,W] row-major is [C*H*W]).
 * relu, relu6: q = clamp(q, CLAMP_MIN, CLAMP_MAX).
 * Output: the last op's codes; logit = (float)(q - OUT_ZERO_POINT) * OUT_SCALE;
 *   the predicted class is the index of the first largest code.
 *
 * Weights: int8_t codes for 8 bits. For 4 (2) bits, uint8_t bytes hold two
 * (four) codes each in row-major order, the first code in the lowest bits,
 * each code in two's complement within its field; unused high bits of the
 * last byte are 0. Code i is field i % (8/bits) of byte i / (8/bits).
 * weight_scale is informational: the arithmetic uses only the codes, bias
 * and requantization parameters.
 */

#ifndef MY_NET_V2_MODEL_H
#define MY_NET_V2_MODEL_H

#include <stdint.h>

#define MY_NET_V2_FORMAT "qat-int8/2"
#define MY_NET_V2_NAME "small"
#define MY_NET_V2_REQUANT_FIXED 1
#define MY_NET_V2_INPUT_C 1
#define MY_NET_V2_INPUT_H 6
#define MY_NET_V2_INPUT_W 6
#define MY_NET_V2_INPUT_SIZE 36
#define MY_NET_V2_CLASSES 3
#define MY_NET_V2_NUM_OPS 6
#define MY_NET_V2_MAX_ACTIVATION_SIZE 108
#define MY_NET_V2_NORM_MEAN 0.1307f
#define MY_NET_V2_NORM_STD 0.3081f
#define MY_NET_V2_INPUT_SCALE 0.012728f
#define MY_NET_V2_INPUT_ZERO_POINT 33
#define MY_NET_V2_INPUT_QMIN 0
#define MY_NET_V2_INPUT_QMAX 255

/* op 0: conv c1 */
#define MY_NET_V2_C1_IN 1
#define MY_NET_V2_C1_OUT 3
#define MY_NET_V2_C1_KERNEL 3
#define MY_NET_V2_C1_STRIDE 1
#define MY_NET_V2_C1_PADDING 1
#define MY_NET_V2_C1_WEIGHT_BITS 2
#define MY_NET_V2_C1_CLAMP_MIN 7
#define MY_NET_V2_C1_CLAMP_MAX 255
#define MY_NET_V2_C1_OUT_SCALE 0.0235f
#define MY_NET_V2_C1_OUT_ZERO_POINT 7
#define MY_NET_V2_C1_OUT_QMIN 0
#define MY_NET_V2_C1_OUT_QMAX 255
#define MY_NET_V2_C1_OUT_C 3
#define MY_NET_V2_C1_OUT_H 6
#define MY_NET_V2_C1_OUT_W 6
#define MY_NET_V2_C1_OUT_SIZE 108
#define MY_NET_V2_C1_WEIGHT_COUNT 27
static const uint8_t my_net_v2_c1_weight[7] = {
    178, 177, 177, 177, 177, 177, 17,
};
static const float my_net_v2_c1_weight_scale[3] = {
    0.012f, 0.0071f, 0.0203f,
};
static const int32_t my_net_v2_c1_bias[3] = {
    -120, 0, 3456,
};
static const int32_t my_net_v2_c1_fixed_multiplier[3] = {
    1786542720, 2114075520, 1511117440,
};
static const int32_t my_net_v2_c1_shift[3] = {
    7, 8, 6,
};

/* op 1: relu6 r6 */
#define MY_NET_V2_R6_CLAMP_MIN 7
#define MY_NET_V2_R6_CLAMP_MAX 200
#define MY_NET_V2_R6_OUT_SCALE 0.0235f
#define MY_NET_V2_R6_OUT_ZERO_POINT 7
#define MY_NET_V2_R6_OUT_QMIN 0
#define MY_NET_V2_R6_OUT_QMAX 255
#define MY_NET_V2_R6_OUT_C 3
#define MY_NET_V2_R6_OUT_H 6
#define MY_NET_V2_R6_OUT_W 6
#define MY_NET_V2_R6_OUT_SIZE 108

/* op 2: maxpool pool1 */
#define MY_NET_V2_POOL1_KERNEL 2
#define MY_NET_V2_POOL1_STRIDE 2
#define MY_NET_V2_POOL1_OUT_SCALE 0.0235f
#define MY_NET_V2_POOL1_OUT_ZERO_POINT 7
#define MY_NET_V2_POOL1_OUT_QMIN 0
#define MY_NET_V2_POOL1_OUT_QMAX 255
#define MY_NET_V2_POOL1_OUT_C 3
#define MY_NET_V2_POOL1_OUT_H 3
#define MY_NET_V2_POOL1_OUT_W 3
#define MY_NET_V2_POOL1_OUT_SIZE 27

/* op 3: avgpool pool2 */
#define MY_NET_V2_POOL2_KERNEL 2
#define MY_NET_V2_POOL2_STRIDE 1
#define MY_NET_V2_POOL2_OUT_SCALE 0.0235f
#define MY_NET_V2_POOL2_OUT_ZERO_POINT 7
#define MY_NET_V2_POOL2_OUT_QMIN 0
#define MY_NET_V2_POOL2_OUT_QMAX 255
#define MY_NET_V2_POOL2_OUT_C 3
#define MY_NET_V2_POOL2_OUT_H 2
#define MY_NET_V2_POOL2_OUT_W 2
#define MY_NET_V2_POOL2_OUT_SIZE 12

/* op 4: flatten flat */
#define MY_NET_V2_FLAT_OUT_SCALE 0.0235f
#define MY_NET_V2_FLAT_OUT_ZERO_POINT 7
#define MY_NET_V2_FLAT_OUT_QMIN 0
#define MY_NET_V2_FLAT_OUT_QMAX 255
#define MY_NET_V2_FLAT_OUT_SIZE 12

/* op 5: linear head.fc */
#define MY_NET_V2_HEAD_FC_IN 12
#define MY_NET_V2_HEAD_FC_OUT 3
#define MY_NET_V2_HEAD_FC_WEIGHT_BITS 4
#define MY_NET_V2_HEAD_FC_CLAMP_MIN 0
#define MY_NET_V2_HEAD_FC_CLAMP_MAX 255
#define MY_NET_V2_HEAD_FC_OUT_SCALE 0.171f
#define MY_NET_V2_HEAD_FC_OUT_ZERO_POINT 120
#define MY_NET_V2_HEAD_FC_OUT_QMIN 0
#define MY_NET_V2_HEAD_FC_OUT_QMAX 255
#define MY_NET_V2_HEAD_FC_OUT_SIZE 3
#define MY_NET_V2_HEAD_FC_WEIGHT_COUNT 36
static const uint8_t my_net_v2_head_fc_weight[18] = {
    40, 9, 231, 197, 163, 129, 111, 77, 43, 9, 231, 197, 163, 129, 111, 77,
    43, 121,
};
static const float my_net_v2_head_fc_weight_scale[3] = {
    0.0049f, 0.0061f, 0.0033f,
};
static const int32_t my_net_v2_head_fc_bias[3] = {
    789, -4321, 0,
};
static const int32_t my_net_v2_head_fc_fixed_multiplier[3] = {
    1986422400, 1843449984, 1994552448,
};
static const int32_t my_net_v2_head_fc_shift[3] = {
    -2, 10, 11,
};

#endif /* MY_NET_V2_MODEL_H */
