// Quantized linear layers y [M, N] = x [M, K] . W^T + bias with 8-bit weights held in packed panels.
//
// Two packed layouts, one per kind of arithmetic, each read by every tier (AMX, AVX-512, AVX2, scalar):
//
//  Int8Panels (int8 weights, int8 arithmetic): output channels in panels of 16, each panel [Kp / 4][16][4] int8:
//    byte (n, k) at (n / 16) * Kp * 16 + (k / 4) * 64 + (n % 16) * 4 + k % 4   ("VNNI-4")
//    so one 64-byte row is 4 k of 16 channels: an operand of VPDPBUSD and a row of an AMX TDPBSSD B tile.
//
//  CodePanels (FP8 weights, bf16 arithmetic): e4m3fn / e5m2 bytes (sign-magnitude: bit 7 the sign, bits 0-6 the
//    magnitude) in panels of 16 channels. Each
//    64-byte row holds k-pairs (2j, 2j+1) and (2j+2, 2j+3) of the 16 channels ("VNNI-2") interleaved in 8-byte
//    pieces, so that decoding with two byte table lookups and one unpack yields the two bf16 rows of an AMX
//    TDPBF16PS B tile / VDPBF16PS operand:
//      piece p (0..7) of row r = bytes [8 (p / 2), 8 (p / 2) + 8) of k-pair row 2 r + p % 2,
//      k-pair row j = (channel c, k 2 j), (c, 2 j + 1) for c = 0..15.
//
// Np (channels) is padded to a multiple of 32 and Kp (inputs) to a multiple of 64 with zero weights. Scales
// and the int8 compensation are stored transposed, [groups][Np], so 16 consecutive channels are contiguous.
// A group is group_size consecutive inputs sharing one scale per channel (group_size = K: one per channel).
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/dispatch.h"

namespace apt_fast {

constexpr int64_t kQPanel = 16;      // channels per panel
constexpr int64_t kQPadN = 32;       // Np is a multiple of this (an AMX block is two panels)
constexpr int64_t kQPadK = 64;       // Kp is a multiple of this (one AMX int8 tile of k)
constexpr int64_t kMaxGroupK = 65536;  // u8 x s8 products summed over a group stay within int32

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The FP8 formats of CodePanels: what a magnitude code 0..127 means.
enum class CodeFormat : int { E4M3 = 1, E5M2 = 2 };

struct QuantizedShape {
  int64_t n = 0, k = 0;          // the layer: out_features, in_features
  int64_t group_size = 0;        // inputs per scale (== k: one scale per channel)
  int64_t np() const { return round_up(n, kQPadN); }
  int64_t kp() const { return round_up(k, kQPadK); }
  int64_t groups() const { return k / group_size; }
};

// --- packing (quantized_linear_pack.cpp), single-threaded-per-panel, run once per layer ---------------------

// q [N, K] int8 (row stride K) -> panels [Np * Kp] and compensation [groups][Np] = 128 * sum over the group.
void pack_int8_panels(const QuantizedShape& s, const int8_t* q, int8_t* panels, int32_t* compensation,
                      int num_threads);
// panels -> q [N, K] (row-major): the canonical layout that files hold.
void unpack_int8_panels(const QuantizedShape& s, const int8_t* panels, int8_t* q, int num_threads);
// codes [N, K] FP8 bytes -> panels [Np * Kp]; and back.
void pack_code_panels(const QuantizedShape& s, const uint8_t* codes, uint8_t* panels, int num_threads);
void unpack_code_panels(const QuantizedShape& s, const uint8_t* panels, uint8_t* codes, int num_threads);
// scales [N, groups] fp32 -> [groups][Np] (zero for padded channels); and back.
void pack_scales(const QuantizedShape& s, const float* scales, float* packed);

// The bf16 bits of magnitude code 0..127 of `format` (exact: every FP8 value is a bf16).
uint16_t code_magnitude_bf16(CodeFormat format, int code);
// The fp32 value of an FP8 byte (sign included).
float code_value(CodeFormat format, uint8_t code);

// --- matrix products ------------------------------------------------------------------------------------------

// Int8 weights against activations quantized inside the kernel per row and per group (the weights' groups, so
// an outlier input only coarsens its own group), with exact int32 sums per group:
//  activation_bits 8 (W8A8 dynamic): q = round-half-even(x * (127 / amax)) in [-127, 127], scale amax / 127;
//  activation_bits 16 (weight-only int8): q = round-half-even(x * (32767 / amax)) in [-32767, 32767], scale
//    amax / 32767, multiplied as a signed high byte h = floor(q / 256) and an unsigned low byte l = q - 256 h
//    (16-bit fixed point per row and group: finer than bf16's 8 bits for all but values far below the group's
//    largest), S_g = 256 H_g + L_g;
// and y[m, n] = sum_g (float(S_g[m, n]) * w_scale[g, n]) * a_scale[m, g] + bias[n] (16 bits: float(S_g) is
// float(H_g) * 256 + float(L_g)), the fp32 operations in this order on every tier, so outputs are bit-identical
// across tiers.
struct Int8LinearArgs {
  QuantizedShape shape;
  int activation_bits = 8;         // 8 or 16
  int64_t m = 0;
  const void* x = nullptr;         // [M, K] fp32 or bf16, row stride x_stride
  int64_t x_stride = 0;
  Dtype x_dtype = Dtype::Float32;
  const int8_t* panels = nullptr;  // Int8Panels
  const int32_t* compensation = nullptr;  // [groups][Np]: 128 * the group's weight sums
  const float* scales = nullptr;   // [groups][Np]
  const float* bias = nullptr;     // [N] or null
  void* y = nullptr;               // [M, N] in x's dtype, row stride y_stride
  int64_t y_stride = 0;
  int num_threads = 1;
};

// FP8 weight-only: x rounded to bf16 (kept as is when bf16), codes decoded to bf16, products summed in fp32 per
// group: y[m, n] = sum_g w_scale[g, n] * sum_{k in g} bf16(x[m, k]) * value(code[n, k]) + bias[n]
// (the AMX tier folds a per-group scale into the decoded weights instead, rounding them to bf16).
struct CodeLinearArgs {
  QuantizedShape shape;
  CodeFormat format = CodeFormat::E4M3;
  int64_t m = 0;
  const void* x = nullptr;          // [M, K] fp32 or bf16, row stride x_stride
  int64_t x_stride = 0;
  Dtype x_dtype = Dtype::Float32;
  const uint8_t* panels = nullptr;  // CodePanels
  const float* scales = nullptr;    // [groups][Np]
  const float* bias = nullptr;      // [N] or null
  void* y = nullptr;                // [M, N] in x's dtype
  int64_t y_stride = 0;
  int num_threads = 1;
};

// codes [rows, cols] = FP8(x / scale) rounded to nearest even, bit-identical to torch's Tensor.to(float8_*);
// one scale per group of group_size consecutive columns. saturate: finite values past the largest code become it
// (else e4m3fn gives NaN and e5m2 inf, as torch does).
struct Fp8QuantizeArgs {
  CodeFormat format = CodeFormat::E4M3;
  int64_t rows = 0, cols = 0, group_size = 0;
  const void* x = nullptr;       // [rows, cols] fp32 or bf16, row stride x_stride
  int64_t x_stride = 0;
  Dtype x_dtype = Dtype::Float32;
  const float* scales = nullptr;  // [rows, cols / group_size]
  bool saturate = false;
  uint8_t* codes = nullptr;       // [rows, cols] out
  int num_threads = 1;
};

// Dequantized weights, fp32: the `count` layer rows listed in `rows` (ascending ranges for a backward pass, token
// ids for an embedding lookup on a tied, quantized output projection) into out [count, K], row-major.
void dequantize_int8_panels(const QuantizedShape& s, const int8_t* panels, const float* scales, const int64_t* rows,
                            int64_t count, float* out, int num_threads);
void dequantize_code_panels(const QuantizedShape& s, CodeFormat format, const uint8_t* panels, const float* scales,
                            const int64_t* rows, int64_t count, float* out, int num_threads);

// Validate, then run the tier in use (AMX from amx_min_rows() rows on, where the CPU has it).
void int8_linear(const Int8LinearArgs& args);
void code_linear(const CodeLinearArgs& args);
void fp8_quantize(const Fp8QuantizeArgs& args);

// Rows from which the AMX kernels take over from the vector ones (measured; see the dispatch), and a way to move
// the crossover (tests run AMX at small shapes, benchmarks measure it).
int64_t amx_min_rows();
void set_amx_min_rows(int64_t rows);

// The vector-tier kernels, and the AMX ones (quantized_linear_amx.cpp).
APT_FAST_DECLARE_TIERS(void int8_linear_kernel(const Int8LinearArgs& args))
APT_FAST_DECLARE_TIERS(void code_linear_kernel(const CodeLinearArgs& args))
APT_FAST_DECLARE_TIERS(void fp8_quantize_kernel(const Fp8QuantizeArgs& args))
namespace simd_amx {
void int8_linear_kernel(const Int8LinearArgs& args);
void code_linear_kernel(const CodeLinearArgs& args);
}  // namespace simd_amx

}  // namespace apt_fast
