// Block-sparse linear forward on the vector tiers (compiled once per tier; block_linear.h has the arithmetic).
//
// Few rows (M < kTransposeRows): dot products, each block row's rows accumulated in vectors over the columns of its
// kept blocks (up to 16 weight rows x M activation rows at once), reduced across lanes at the end of the block
// row: the weights are read once, in storage order. More rows: y^T = W x^T with x transposed once, each kept block
// a dense piece of the register-blocked broadcast micro-kernel (its entries broadcast against 16 activation rows
// per vector, up to 64 rows per pass), the accumulators held across a chain of kept blocks (kChainColumns columns).
// Both forms add the chains' sums, so that long rows stay as accurate as torch's own fp32 matmul.
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

constexpr int64_t kTransposeRows = 8;  // from this many activation rows on: the transposed form
constexpr int kMaxLaneVectors = 4;     // activation-row vectors per pass of the transposed form
constexpr int kDotAccumulators = 16;   // weight rows x activation rows accumulated at once by the dot form
// Columns one chain of accumulators sums before its sum is added to the total: a long row summed in one chain
// (K / 2 terms at 50%) loses ~sqrt(K) roundings of the growing partial sum; chunked, it stays as accurate as torch.
constexpr int64_t kChainColumns = 128;

int64_t chain_blocks(const BlockShape& s) { return std::max<int64_t>(1, kChainColumns / s.bk); }

template <class T>
const T* block_values(const BlockWeight& w, int64_t b) {
  return static_cast<const T*>(w.values) + b * w.shape.bn * w.shape.bk;
}

// --- dot form: out[i][r] for weight rows [r0, r0 + RG) of block row `row`, activation rows [0, MR) ------------

template <class T, int RG, int MR>
void dot_rows(const BlockWeight& w, int64_t row, int64_t r0, const float* xf, int64_t kp, float* out, int64_t ld) {
  const BlockShape& s = w.shape;
  const int64_t end = w.row_offsets[row + 1], chain = chain_blocks(s);
  Vec total[RG][MR], acc[RG][MR];
  for (int r = 0; r < RG; ++r)
    for (int i = 0; i < MR; ++i) total[r][i] = Vec(0.0f);
  for (int64_t b0 = w.row_offsets[row]; b0 < end; b0 += chain) {
    for (int r = 0; r < RG; ++r)
      for (int i = 0; i < MR; ++i) acc[r][i] = Vec(0.0f);
    for (int64_t b = b0; b < std::min(end, b0 + chain); ++b) {
      const T* block = block_values<T>(w, b) + r0 * s.bk;
      const float* x = xf + static_cast<int64_t>(w.columns[b]) * s.bk;
      for (int c = 0; c < s.bk; c += Vec::size) {
        Vec xv[MR];
        for (int i = 0; i < MR; ++i) xv[i] = Vec::load(x + i * kp + c);
        for (int r = 0; r < RG; ++r) {
          const Vec wv = Vec::load(block + r * s.bk + c);
          for (int i = 0; i < MR; ++i) acc[r][i] = Vec::fmadd(wv, xv[i], acc[r][i]);
        }
      }
    }
    for (int r = 0; r < RG; ++r)
      for (int i = 0; i < MR; ++i) total[r][i] = total[r][i] + acc[r][i];
  }
  for (int r = 0; r < RG; ++r)
    for (int i = 0; i < MR; ++i) out[i * ld + r0 + r] = total[r][i].reduce_add();
}

template <class T, int MR>
void dot_block_row(const BlockWeight& w, int64_t row, const float* xf, int64_t kp, float* out, int64_t ld) {
  constexpr int RG = kDotAccumulators / MR;
  int64_t r0 = 0;
  for (; r0 + RG <= w.shape.bn; r0 += RG) dot_rows<T, RG, MR>(w, row, r0, xf, kp, out, ld);
  for (; r0 < w.shape.bn; ++r0) dot_rows<T, 1, MR>(w, row, r0, xf, kp, out, ld);
}

template <class T>
void dot_form(const BlockLinearArgs& a, const float* xf, int64_t kp, int64_t row, float* out, int64_t ld) {
  int64_t i0 = 0;
  for (; i0 + 4 <= a.m; i0 += 4) dot_block_row<T, 4>(a.w, row, xf + i0 * kp, kp, out + i0 * ld, ld);
  switch (a.m - i0) {
    case 1: return dot_block_row<T, 1>(a.w, row, xf + i0 * kp, kp, out + i0 * ld, ld);
    case 2: return dot_block_row<T, 2>(a.w, row, xf + i0 * kp, kp, out + i0 * ld, ld);
    case 3: return dot_block_row<T, 3>(a.w, row, xf + i0 * kp, kp, out + i0 * ld, ld);
    default: return;
  }
}

// --- transposed form: yt[r][i] = sum over kept blocks of W[row rows][block columns] . xt[block columns][i] --------

template <class T, int NV>
void transposed_pass(const BlockWeight& w, const std::vector<GemmSegment<T>>& segments, int64_t mp, float* yt) {
  broadcast_gemm<T, NV>(w.shape.bn, segments.data(), static_cast<int64_t>(segments.size()), w.shape.bk, 1, w.shape.bk,
                        mp, yt, mp, false);
}

// yt[r][i0 + j] = the chain of kept blocks in `segments`, for `vectors` vectors of activation rows j.
template <class T>
void transposed_chain(const BlockWeight& w, const std::vector<GemmSegment<T>>& segments, int64_t mp, int64_t vectors,
                      float* yt) {
  switch (vectors) {
    case 1: return transposed_pass<T, 1>(w, segments, mp, yt);
    case 2: return transposed_pass<T, 2>(w, segments, mp, yt);
    case 3: return transposed_pass<T, 3>(w, segments, mp, yt);
    default: return transposed_pass<T, 4>(w, segments, mp, yt);
  }
}

// yt [bn][mp]: the block row's chains of chain_blocks() kept blocks, the first written to yt, each later one to
// `chain_sum` [bn][mp] and added.
template <class T>
void transposed_form(const BlockLinearArgs& a, const float* xt, int64_t mp, int64_t row, float* yt, float* chain_sum) {
  const BlockWeight& w = a.w;
  const int64_t begin = w.row_offsets[row], end = w.row_offsets[row + 1], chain = chain_blocks(w.shape);
  std::vector<GemmSegment<T>> segments;
  for (int64_t i0 = 0; i0 < mp; i0 += kMaxLaneVectors * Vec::size) {
    const int64_t vectors = std::min<int64_t>(kMaxLaneVectors, (mp - i0) / Vec::size);
    for (int64_t b0 = begin; b0 == begin || b0 < end; b0 += chain) {
      segments.clear();
      for (int64_t b = b0; b < std::min(end, b0 + chain); ++b)
        segments.push_back({block_values<T>(w, b), xt + static_cast<int64_t>(w.columns[b]) * w.shape.bk * mp + i0});
      transposed_chain<T>(w, segments, mp, vectors, (b0 == begin ? yt : chain_sum) + i0);
      if (b0 == begin) continue;
      for (int64_t r = 0; r < w.shape.bn; ++r)
        for (int64_t j = i0; j < i0 + vectors * Vec::size; j += Vec::size)
          (Vec::load(yt + r * mp + j) + Vec::load(chain_sum + r * mp + j)).store(yt + r * mp + j);
    }
  }
}

template <class T>
void forward(const BlockLinearArgs& a) {
  const BlockShape& s = a.w.shape;
  const bool round_bf16 = a.w.dtype == BlockValues::BFloat16;
  const size_t element = a.x_dtype == Dtype::Float32 ? 4 : 2;
  const bool transposed = a.m >= kTransposeRows;
  const int64_t mp = round_up(a.m, Vec::size);
  std::vector<float> xs(static_cast<size_t>(transposed ? s.k * mp : a.m * s.k));
  if (transposed) {
    transposed_rows(a.x, a.x_stride, a.x_dtype, round_bf16, a.m, s.k, mp, xs.data(), a.num_threads);
  } else {
    parallel_for(a.m, a.num_threads, [&](int64_t begin, int64_t end) {
      float_rows(a.x, a.x_stride, a.x_dtype, round_bf16, begin, end, s.k, s.k, xs.data());
    });
  }
  // Tasks of whole block rows, about 16 weight rows each.
  const int64_t rows_per_task = std::max<int64_t>(1, 16 / s.bn), tasks = (s.block_rows() + rows_per_task - 1) / rows_per_task;
  parallel_for(tasks, a.num_threads, [&](int64_t begin, int64_t end) {
    std::vector<float> out(static_cast<size_t>(transposed ? s.bn * mp : a.m * s.bn));  // [bn][mp] or [M][bn]
    std::vector<float> chain_sum(static_cast<size_t>(transposed ? s.bn * mp : 0));      // [bn][mp]
    std::vector<float> row_out(static_cast<size_t>(s.bn));
    for (int64_t task = begin; task < end; ++task) {
      for (int64_t row = task * rows_per_task; row < std::min(s.block_rows(), (task + 1) * rows_per_task); ++row) {
        const int64_t n0 = row * s.bn;
        if (transposed) transposed_form<T>(a, xs.data(), mp, row, out.data(), chain_sum.data());
        else dot_form<T>(a, xs.data(), s.k, row, out.data(), s.bn);
        for (int64_t i = 0; i < a.m; ++i) {
          float* values = out.data() + i * s.bn;
          if (transposed) {
            for (int64_t r = 0; r < s.bn; ++r) row_out[r] = out[r * mp + i];
            values = row_out.data();
          }
          add_bias_row(values, s.bn, a.bias, n0);
          store_row(values, s.bn, static_cast<char*>(a.y) + (i * a.y_stride + n0) * element, a.x_dtype);
        }
      }
    }
  });
}

}  // namespace

void block_linear_kernel(const BlockLinearArgs& a) {
  if (a.w.dtype == BlockValues::Float32) forward<float>(a);
  else forward<uint16_t>(a);
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
