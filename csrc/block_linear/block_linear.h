// Block-sparse (block-CSR) linear layers y [M, N] = x [M, K] . W^T + bias, W kept as whole (bn, bk) blocks, read in
// the format of apt_fast/reference/block_linear.py:
//   row_offsets [N / bn + 1] int64: kept blocks before each block row;  columns [blocks] int32: each kept block's
//   block column, ascending within a row;  values [blocks][bn][bk] fp32 or bf16, row-major.
// Blocks (16, 16), (32, 32) and (1, 16). Arithmetic: fp32 values, fp32 products and sums; bf16 values, x rounded to
// bf16, exact products, fp32 sums; y in x's dtype (fp32 or bf16).
// Tiers: every tier runs a dense register-blocked micro-kernel on each kept block (common/broadcast_gemm.h) with
// activations transposed (y^T = W x^T: a block's entries broadcast, 16 activation rows per vector), or, for a few
// rows, dot products of block rows with x; threads split over block rows, the GEMV reads only the kept blocks. AMX
// (bf16 values, 16- and 32-row blocks, from block_amx_min_rows() rows): each kept block's rows are an A tile as
// they are stored, multiplied with x's VNNI B tiles.
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/dispatch.h"

namespace apt_fast {

enum class BlockValues : int { Float32 = 0, BFloat16 = 1 };

struct BlockShape {
  int64_t n = 0, k = 0;  // out_features, in_features
  int bn = 16, bk = 16;  // block rows, block columns
  int64_t block_rows() const { return n / bn; }
  int64_t block_cols() const { return k / bk; }
};

struct BlockWeight {
  BlockShape shape;
  BlockValues dtype = BlockValues::Float32;
  int64_t blocks = 0;
  const void* values = nullptr;          // [blocks][bn][bk]
  const int64_t* row_offsets = nullptr;  // [N / bn + 1]
  const int32_t* columns = nullptr;      // [blocks]
};

struct BlockLinearArgs {
  BlockWeight w;
  int64_t m = 0;
  const void* x = nullptr;  // [M, K] fp32 or bf16, row stride x_stride
  int64_t x_stride = 0;
  Dtype x_dtype = Dtype::Float32;
  const float* bias = nullptr;  // [N] or null
  void* y = nullptr;            // [M, N] in x's dtype, row stride y_stride
  int64_t y_stride = 0;
  int num_threads = 1;
};

// grad_x [M, K] = grad_y . W and grad_values [blocks][bn][bk] = grad_y[:, block rows]^T . x[:, block columns]
// (x rounded to bf16 for bf16 values); fp32 arithmetic; either output may be null.
struct BlockBackwardArgs {
  BlockWeight w;
  int64_t m = 0;
  const void* grad_y = nullptr;  // [M, N] fp32 or bf16, row stride grad_stride
  int64_t grad_stride = 0;
  Dtype grad_dtype = Dtype::Float32;
  const void* x = nullptr;  // [M, K] fp32 or bf16, row stride x_stride
  int64_t x_stride = 0;
  Dtype x_dtype = Dtype::Float32;
  float* grad_x = nullptr;       // [M, K] fp32 or null
  float* grad_values = nullptr;  // [blocks][bn][bk] fp32 or null
  int num_threads = 1;
};

// Validate (shapes, the offsets, then the columns), then run the tier in use.
void block_linear(const BlockLinearArgs& args);
void block_linear_backward(const BlockBackwardArgs& args);

// Rows from which the AMX kernel takes over (bf16 values), and a way to move it (tests, benchmarks).
int64_t block_amx_min_rows();
void set_block_amx_min_rows(int64_t rows);

APT_FAST_DECLARE_TIERS(void block_linear_kernel(const BlockLinearArgs& args))
APT_FAST_DECLARE_TIERS(void block_backward_kernel(const BlockBackwardArgs& args))
namespace simd_amx {
void block_linear_kernel(const BlockLinearArgs& args);
}  // namespace simd_amx

}  // namespace apt_fast
