// Unstructured sparse linear layer y [M, N] = x [M, K] . W^T + bias, with W [N, K] held as a bitmap of its kept
// entries and their values packed row by row (apt_fast/reference/bitmap_linear.py is the specification):
//   bitmap       uint64 [N][words], words = ceil(K / 64); bit j of word w <-> column 64 w + j (none past K)
//   row_offsets  int64 [N + 1]: kept entries in the rows before n
//   values       [nnz] fp32, bf16 or int8 (with fp32 scales [N] = amax / 127 per output channel)
// Arithmetic by value type: fp32 products and sums; bf16: x rounded to bf16, exact products, fp32 sums; int8: x
// quantized per row to int8 (quantized_rows.h, as int8_linear with 8-bit activations), exact int32 sums and
// y = (float(S) * w_scale[n]) * a_scale[m] + bias[n] (bit-identical on every tier).
//
// Forward, two shapes of loop (bitmap_float_kernels.cpp, bitmap_int8_kernels.cpp):
//  - few rows (decode, bandwidth-bound): each weight row is streamed once per block of x rows, a vector of
//    columns at a time expanded from the packed values under its bitmap bits (AVX-512 vexpandps / VBMI2
//    vpexpandb; AVX2 a permute table) and multiplied with every row of the block, so the bytes read are the
//    packed values plus 1 bit per weight;
//  - many rows (float values): x transposed once, xT [Kp][Mp], and each kept weight broadcast and multiplied
//    with a vector of rows of x, so the work is proportional to the kept weights.
// Backward (bitmap_backward_kernels.cpp): grad_x = grad_y . W through the sparse weight and, for float values,
// grad_values[i] = sum_m grad_y[m, n] x[m, k] for each kept (n, k) only, in one pass over the weight.
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/dispatch.h"

namespace apt_fast {

enum class ValueType : int { Float32 = 0, BFloat16 = 1, Int8 = 2 };

constexpr int64_t kBitmapWord = 64;  // columns per bitmap word

struct BitmapWeight {
  int64_t n = 0, k = 0;                  // out_features, in_features
  const uint64_t* bitmap = nullptr;      // [n][words()]
  const int64_t* row_offsets = nullptr;  // [n + 1]
  const void* values = nullptr;          // [nnz] of value_type
  ValueType value_type = ValueType::Float32;
  const float* scales = nullptr;         // [n], int8 values only
  int64_t words() const { return (k + kBitmapWord - 1) / kBitmapWord; }
  int64_t kp() const { return words() * kBitmapWord; }  // K padded to whole words
  int64_t nnz() const { return row_offsets[n]; }
};

struct BitmapLinearArgs {
  BitmapWeight w;
  int64_t m = 0;
  const void* x = nullptr;      // [M, K] fp32 or bf16, row stride x_stride
  int64_t x_stride = 0;
  Dtype x_dtype = Dtype::Float32;
  const float* bias = nullptr;  // [N] or null
  void* y = nullptr;            // [M, N] in x's dtype, row stride y_stride
  int64_t y_stride = 0;
  int num_threads = 1;
};

struct BitmapBackwardArgs {
  BitmapWeight w;
  int64_t m = 0;
  const void* grad_y = nullptr;   // [M, N], row stride grad_y_stride
  int64_t grad_y_stride = 0;
  Dtype grad_y_dtype = Dtype::Float32;
  const void* x = nullptr;        // [M, K], row stride x_stride (read for grad_values only)
  int64_t x_stride = 0;
  Dtype x_dtype = Dtype::Float32;
  void* grad_x = nullptr;         // [M, K] contiguous in grad_y's dtype, or null: not computed
  void* grad_values = nullptr;    // [nnz] in the values' type (fp32 or bf16), or null: not computed
  int num_threads = 1;
};

// Validate, then run the tier in use.
void bitmap_linear(const BitmapLinearArgs& args);
void bitmap_linear_backward(const BitmapBackwardArgs& args);

// Rows of x from which the float forward (and the backward) switch to the transposed, many-rows loops; a way
// to move the crossover (tests run both loops at small shapes, benchmarks measure it).
int64_t bitmap_many_rows();
void set_bitmap_many_rows(int64_t rows);

APT_FAST_DECLARE_TIERS(void bitmap_float_linear_kernel(const BitmapLinearArgs& args, int64_t many_rows))
APT_FAST_DECLARE_TIERS(void bitmap_int8_linear_kernel(const BitmapLinearArgs& args))
APT_FAST_DECLARE_TIERS(void bitmap_backward_kernel(const BitmapBackwardArgs& args, int64_t many_rows))

}  // namespace apt_fast
