// N:M sparse linear layers y [M, N] = x [M, K] . W^T + bias, W keeping n of every m consecutive inputs of a row
// (m in {4, 8}, 1 <= n < m), read in the format of apt_fast/reference/nm_linear.py:
//   values   [N, K n / m]  fp32, bf16 or int8 (with scales [N] fp32): the kept weights of each row in column order;
//   indices  [N, ceil(K n / m * b / 8)] uint8, b = log2(m): each kept value's position inside its group, b bits,
//            packed LSB-first as one bit stream per row.
// Arithmetic per value dtype (x fp32 or bf16, y in x's dtype):
//   fp32: fp32 products and sums;  bf16: x rounded to bf16, exact products, fp32 sums;
//   int8: x quantized per row as int8_linear with 8-bit activations does (q = round(x * 127 / amax), scale
//         amax / 127), exact int32 sums S, y = (float(S) * scales[n]) * a_scale[m] + bias[n], bit-identical on
//         every tier.
// Tiers: a portable kernel (scalar, AVX2) that decodes each row's columns and gathers x; on AVX-512, for the
// half-dense patterns (2:4, 4:8), x gathered in registers (the positions decoded with VPERMB + VPMULTISHIFTQB into
// a VPERMI2B / VPERMI2PS index, then VDPBF16PS / VPDPBUSD / FMA); on AMX (bf16 and int8, from
// nm_amx_min_rows() rows) the kept values expanded into dense tiles (VPEXPAND) multiplied by x's tiles.
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/dispatch.h"

namespace apt_fast {

enum class NmValues : int { Float32 = 0, BFloat16 = 1, Int8 = 2 };

struct NmShape {
  int64_t n = 0, k = 0;  // out_features, in_features (k a multiple of group)
  int keep = 2;          // n: values kept per group
  int group = 4;         // m: inputs per group
  int bits() const { return group == 8 ? 3 : 2; }
  int64_t kept() const { return k / group * keep; }                   // values per row
  int64_t index_bytes() const { return (kept() * bits() + 7) / 8; }  // index bytes per row
  bool half_dense() const { return 2 * keep == group; }               // 2:4 and 4:8
};

struct NmWeight {
  NmShape shape;
  NmValues dtype = NmValues::Float32;
  const void* values = nullptr;     // [N, kept]
  const uint8_t* indices = nullptr;  // [N, index_bytes]
  const float* scales = nullptr;     // [N], int8 values only
};

struct NmLinearArgs {
  NmWeight w;
  int64_t m = 0;
  const void* x = nullptr;  // [M, K] fp32 or bf16, row stride x_stride
  int64_t x_stride = 0;
  Dtype x_dtype = Dtype::Float32;
  const float* bias = nullptr;  // [N] or null
  void* y = nullptr;            // [M, N] in x's dtype, row stride y_stride
  int64_t y_stride = 0;
  int num_threads = 1;
};

// grad_x [M, K] = grad_y . W (int8 dequantized) and grad_values [N, kept]: for each kept (n, k),
// sum_m grad_y[m, n] x[m, k] (x rounded to bf16 for bf16 values); fp32 arithmetic; either output may be null.
struct NmBackwardArgs {
  NmWeight w;
  int64_t m = 0;
  const void* grad_y = nullptr;  // [M, N] fp32 or bf16, row stride grad_stride
  int64_t grad_stride = 0;
  Dtype grad_dtype = Dtype::Float32;
  const void* x = nullptr;  // [M, K] fp32 or bf16, row stride x_stride
  int64_t x_stride = 0;
  Dtype x_dtype = Dtype::Float32;
  float* grad_x = nullptr;       // [M, K] fp32 or null
  float* grad_values = nullptr;  // [N, kept] fp32 or null
  int num_threads = 1;
};

// Validate, then run the tier in use.
void nm_linear(const NmLinearArgs& args);
void nm_linear_backward(const NmBackwardArgs& args);

// Rows from which the AMX kernel takes over (measured; see the dispatch), and a way to move it (tests, benchmarks).
int64_t nm_amx_min_rows();
void set_nm_amx_min_rows(int64_t rows);

APT_FAST_DECLARE_TIERS(void nm_linear_kernel(const NmLinearArgs& args))
APT_FAST_DECLARE_TIERS(void nm_backward_kernel(const NmBackwardArgs& args))
namespace simd_amx {
void nm_linear_kernel(const NmLinearArgs& args);
}  // namespace simd_amx

}  // namespace apt_fast
