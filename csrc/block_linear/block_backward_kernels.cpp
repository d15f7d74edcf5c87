// Block-sparse linear backward on the vector tiers (compiled once per tier), fp32 arithmetic, every kept block a
// dense piece of the broadcast micro-kernel (common/broadcast_gemm.h):
//   grad_x:      grad_x^T[block column] = sum over the column's kept blocks of W_block^T . grad_y^T[block rows],
//                the blocks visited column by column (an index built per call), so each thread owns whole columns of
//                grad_x^T and keeps its accumulators across the column's blocks;
//   grad_values: for each kept block, grad_y[:, block rows]^T . x[:, block columns] (only the kept blocks' dW).
#include <algorithm>
#include <vector>

#include "block_linear/block_linear.h"
#include "common/broadcast_gemm.h"
#include "common/float_rows.h"
#include "common/parallel_for.h"
#include "common/simd/vec.h"

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

constexpr int kMaxLaneVectors = 4;  // activation-row vectors per pass of grad_x

template <class T>
const T* block_values(const BlockWeight& w, int64_t b) {
  return static_cast<const T*>(w.values) + b * w.shape.bn * w.shape.bk;
}

// The kept blocks column by column: blocks of column c are order[starts[c] .. starts[c + 1]), with their block rows.
struct ColumnIndex {
  std::vector<int64_t> starts, order, rows;
  explicit ColumnIndex(const BlockWeight& w) : starts(w.shape.block_cols() + 1, 0), order(w.blocks), rows(w.blocks) {
    for (int64_t b = 0; b < w.blocks; ++b) ++starts[w.columns[b] + 1];
    for (int64_t c = 0; c < w.shape.block_cols(); ++c) starts[c + 1] += starts[c];
    std::vector<int64_t> fill(starts.begin(), starts.end() - 1);
    for (int64_t row = 0; row < w.shape.block_rows(); ++row)
      for (int64_t b = w.row_offsets[row]; b < w.row_offsets[row + 1]; ++b) {
        const int64_t at = fill[w.columns[b]]++;
        order[at] = b;
        rows[at] = row;
      }
  }
};

template <class T, int NV>
void grad_x_pass(const BlockWeight& w, const std::vector<GemmSegment<T>>& segments, int64_t mp, float* xt) {
  // xt[c][i] = sum over blocks, r < bn of W_b[r][c] * gt[n0 + r][i]: A element (p = r, row c) at W_b[r * bk + c]
  broadcast_gemm<T, NV>(w.shape.bk, segments.data(), static_cast<int64_t>(segments.size()), w.shape.bn, w.shape.bk, 1,
                        mp, xt, mp, false);
}

template <class T>
void grad_input(const BlockBackwardArgs& a, const float* gt, int64_t mp, float* grad_xt) {
  const BlockWeight& w = a.w;
  const BlockShape& s = w.shape;
  const ColumnIndex index(w);
  parallel_for(s.block_cols(), a.num_threads, [&](int64_t begin, int64_t end) {
    std::vector<GemmSegment<T>> segments;
    for (int64_t col = begin; col < end; ++col) {
      float* xt = grad_xt + col * s.bk * mp;
      for (int64_t i0 = 0; i0 < mp; i0 += kMaxLaneVectors * Vec::size) {
        segments.clear();
        for (int64_t at = index.starts[col]; at < index.starts[col + 1]; ++at)
          segments.push_back({block_values<T>(w, index.order[at]), gt + index.rows[at] * s.bn * mp + i0});
        switch (std::min<int64_t>(kMaxLaneVectors, (mp - i0) / Vec::size)) {
          case 1: grad_x_pass<T, 1>(w, segments, mp, xt + i0); break;
          case 2: grad_x_pass<T, 2>(w, segments, mp, xt + i0); break;
          case 3: grad_x_pass<T, 3>(w, segments, mp, xt + i0); break;
          default: grad_x_pass<T, 4>(w, segments, mp, xt + i0); break;
        }
      }
    }
  });
}

template <int NV>
void grad_block(const BlockBackwardArgs& a, const float* g, const float* xf, int64_t row, int64_t b) {
  const BlockShape& s = a.w.shape;
  // dW[r][c] = sum_i g[i][n0 + r] * xf[i][c0 + c]: A element (p = i, row r) at g[i * N + n0 + r]
  const GemmSegment<float> segment{g + row * s.bn, xf + static_cast<int64_t>(a.w.columns[b]) * s.bk};
  broadcast_gemm<float, NV>(s.bn, &segment, 1, a.m, s.n, 1, s.k, a.grad_values + b * s.bn * s.bk, s.bk, false);
}

void grad_values(const BlockBackwardArgs& a, const float* g, const float* xf) {
  const BlockShape& s = a.w.shape;
  parallel_for(s.block_rows(), a.num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row)
      for (int64_t b = a.w.row_offsets[row]; b < a.w.row_offsets[row + 1]; ++b) {
        if (s.bk / Vec::size == 1) grad_block<1>(a, g, xf, row, b);
        else if (s.bk / Vec::size == 2) grad_block<2>(a, g, xf, row, b);
        else grad_block<4>(a, g, xf, row, b);
      }
  });
}

}  // namespace

void block_backward_kernel(const BlockBackwardArgs& a) {
  const BlockShape& s = a.w.shape;
  const bool bf16 = a.w.dtype == BlockValues::BFloat16;
  if (a.grad_x != nullptr) {
    const int64_t mp = round_up(a.m, Vec::size);
    std::vector<float> gt(static_cast<size_t>(s.n * mp)), xt(static_cast<size_t>(s.k * mp));  // [N][mp], [K][mp]
    transposed_rows(a.grad_y, a.grad_stride, a.grad_dtype, false, a.m, s.n, mp, gt.data(), a.num_threads);
    if (bf16) grad_input<uint16_t>(a, gt.data(), mp, xt.data());
    else grad_input<float>(a, gt.data(), mp, xt.data());
    parallel_for(a.m, a.num_threads, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        for (int64_t c = 0; c < s.k; ++c) a.grad_x[i * s.k + c] = xt[c * mp + i];
    });
  }
  if (a.grad_values != nullptr) {
    std::vector<float> g(static_cast<size_t>(a.m * s.n)), xf(static_cast<size_t>(a.m * s.k));  // [M][N], [M][K]
    parallel_for(a.m, a.num_threads, [&](int64_t begin, int64_t end) {
      float_rows(a.grad_y, a.grad_stride, a.grad_dtype, false, begin, end, s.n, s.n, g.data());
      float_rows(a.x, a.x_stride, a.x_dtype, bf16, begin, end, s.k, s.k, xf.data());
    });
    grad_values(a, g.data(), xf.data());
  }
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
