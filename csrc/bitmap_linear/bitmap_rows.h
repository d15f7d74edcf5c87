// Row preparation shared by the bitmap_linear kernels, written once against Vec: activations as fp32 rows padded
// to whole bitmap words, their transposes, and the scalar value of a packed weight.
#pragma once

#include <algorithm>
#include <cstring>

#include "bitmap_linear/bitmap_linear.h"
#include "common/parallel_for.h"
#include "common/simd/vec.h"

namespace apt_fast {
namespace APT_SIMD_NS {

constexpr int64_t kRowsPerTask = 32;  // weight rows per task of the forward kernels

// body(n0, n1) over [0, n) in tasks of at most kRowsPerTask weight rows, claimed in turn by up to num_threads
// threads (parallel_for_chunks runs the whole range at once on one thread: it is cut here).
template <class Body>
void for_row_tasks(int64_t n, int num_threads, const Body& body) {
  parallel_for_chunks(n, kRowsPerTask, num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t n0 = begin; n0 < end; n0 += kRowsPerTask) body(n0, std::min(end, n0 + kRowsPerTask));
  });
}

inline float value_of(float v) { return v; }
inline float value_of(uint16_t bf16) {
  const uint32_t bits = static_cast<uint32_t>(bf16) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Rows [m_begin, m_end) of x [M, K] (fp32 or bf16, row stride x_stride) as fp32 rows of kp values in out
// (row m at out + (m - m_begin) * kp), zero past k; round_bf16: rounded to bf16 first (the values are bf16).
inline void fp32_rows(const void* x, int64_t x_stride, Dtype dtype, int64_t m_begin, int64_t m_end, int64_t k,
                      int64_t kp, bool round_bf16, float* out) {
  for (int64_t m = m_begin; m < m_end; ++m) {
    float* dst = out + (m - m_begin) * kp;
    int64_t i = 0;
    if (dtype == Dtype::BFloat16) {
      const uint16_t* src = static_cast<const uint16_t*>(x) + m * x_stride;
      for (; i + Vec::size <= k; i += Vec::size) Vec::load(src + i).store(dst + i);
      for (; i < k; ++i) dst[i] = value_of(src[i]);
    } else {
      const float* src = static_cast<const float*>(x) + m * x_stride;
      if (!round_bf16) {
        std::memcpy(dst, src, k * sizeof(float));
      } else {
        alignas(64) uint16_t rounded[Vec::size];
        for (; i < k; i += Vec::size) {
          const int count = static_cast<int>(std::min<int64_t>(Vec::size, k - i));
          Vec::load_partial(src + i, count, 0.0f).store(rounded);
          Vec::load_partial(rounded, count, 0.0f).store_partial(dst + i, count);
        }
      }
    }
    std::fill(dst + k, dst + kp, 0.0f);
  }
}

// rows [count][kp] -> tile [kp][tile_rows] (rows past count zero): a column block of rows, transposed.
inline void transpose_rows(const float* rows, int64_t count, int64_t kp, int64_t tile_rows, float* tile) {
  constexpr int64_t kBlock = 16;
  for (int64_t k0 = 0; k0 < kp; k0 += kBlock) {
    const int64_t k1 = std::min(kp, k0 + kBlock);
    for (int64_t k = k0; k < k1; ++k) std::fill(tile + k * tile_rows + count, tile + (k + 1) * tile_rows, 0.0f);
    for (int64_t r = 0; r < count; ++r)
      for (int64_t k = k0; k < k1; ++k) tile[k * tile_rows + r] = rows[r * kp + k];
  }
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
