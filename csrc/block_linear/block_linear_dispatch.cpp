// The block-sparse linear layer's entry points: validate (shapes, the offsets, then the columns), then pick
// AMX (bf16 values in (16, 16) or (32, 32) blocks, from block_amx_min_rows() rows, where the CPU has it) or the
// vector tier in use.
#include <atomic>
#include <cstring>

#include "block_linear/block_linear.h"

namespace apt_fast {
namespace {

// Below this many rows the vector kernel's dot form (weights read once, in storage order) beats packing x into
// VNNI tiles; from 16 rows on a kept block fills an AMX tile product.
std::atomic<int64_t> amx_rows{16};

void check_weight(const BlockWeight& w) {
  const BlockShape& s = w.shape;
  APT_CHECK((s.bn == 16 && s.bk == 16) || (s.bn == 32 && s.bk == 32) || (s.bn == 1 && s.bk == 16),
            "block must be (16, 16), (32, 32) or (1, 16), got (" << s.bn << ", " << s.bk << ")");
  APT_CHECK(s.n > 0 && s.n % s.bn == 0,
            "out_features must be a positive multiple of the block's rows " << s.bn << ", got " << s.n);
  APT_CHECK(s.k > 0 && s.k % s.bk == 0,
            "in_features must be a positive multiple of the block's columns " << s.bk << ", got " << s.k);
  APT_CHECK(w.blocks >= 0, "blocks must be >= 0, got " << w.blocks);
  APT_CHECK(w.row_offsets && (w.blocks == 0 || (w.values && w.columns)),
            "values, block_row_offsets and block_columns must be non-null");
  APT_CHECK(w.row_offsets[0] == 0, "block_row_offsets[0] must be 0, got " << w.row_offsets[0]);
  APT_CHECK(w.row_offsets[s.block_rows()] == w.blocks,
            "block_row_offsets[-1] must equal the number of blocks " << w.blocks << ", got "
                                                                      << w.row_offsets[s.block_rows()]);
  // All offsets first: rising from 0 to blocks, every row's range lies inside block_columns.
  for (int64_t row = 0; row < s.block_rows(); ++row) {
    const int64_t begin = w.row_offsets[row], end = w.row_offsets[row + 1];
    APT_CHECK(begin <= end, "block_row_offsets must not decrease, got " << begin << " then " << end << " at block row "
                                                                        << row);
  }
  for (int64_t row = 0; row < s.block_rows(); ++row) {
    const int64_t begin = w.row_offsets[row], end = w.row_offsets[row + 1];
    for (int64_t b = begin; b < end; ++b) {
      const int64_t column = w.columns[b];
      APT_CHECK(column >= 0 && column < s.block_cols(),
                "block_columns must be in [0, " << s.block_cols() << "), got " << column << " at block " << b);
      APT_CHECK(b == begin || column > w.columns[b - 1],
                "block_columns must increase within a block row, got " << w.columns[b - 1] << " then " << column
                                                                       << " in block row " << row);
    }
  }
}

bool use_amx(const BlockLinearArgs& a) {
  return active_simd_level() == SimdLevel::Amx && a.w.dtype == BlockValues::BFloat16 && a.w.shape.bn >= 16 &&
         a.m >= amx_rows.load();
}

}  // namespace

int64_t block_amx_min_rows() { return amx_rows.load(); }

void set_block_amx_min_rows(int64_t rows) {
  APT_CHECK(rows >= 1, "amx_min_rows must be >= 1, got " << rows);
  amx_rows.store(rows);
}

void block_linear(const BlockLinearArgs& args) {
  check_weight(args.w);
  APT_CHECK(args.m >= 0, "rows must be >= 0, got " << args.m);
  if (args.m == 0) return;
  APT_CHECK(args.x && args.y, "x and y must be non-null");
  APT_CHECK(args.x_stride >= args.w.shape.k && args.y_stride >= args.w.shape.n, "row strides must cover a row");
  if (use_amx(args)) return simd_amx::block_linear_kernel(args);
  APT_FAST_ROUTE(block_linear_kernel, args);
}

void block_linear_backward(const BlockBackwardArgs& args) {
  check_weight(args.w);
  APT_CHECK(args.m >= 0, "rows must be >= 0, got " << args.m);
  const BlockShape& s = args.w.shape;
  if (args.m == 0) {
    if (args.grad_values) std::memset(args.grad_values, 0, args.w.blocks * s.bn * s.bk * sizeof(float));
    return;
  }
  APT_CHECK(args.x && args.grad_y, "x and grad_y must be non-null");
  APT_CHECK(args.x_stride >= s.k && args.grad_stride >= s.n, "row strides must cover a row");
  APT_FAST_ROUTE(block_backward_kernel, args);
}

}  // namespace apt_fast
