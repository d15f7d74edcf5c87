// Activation rows as fp32 for the sparse kernels, prepared once per call (written against common/simd/vec.h): rows
// padded with zero columns, or transposed with zero lanes past the last row; optionally rounded to bf16 first (for
// bf16 weights, whose products with bf16 activations are exact in fp32).
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/parallel_for.h"
#include "common/simd/vec.h"
#include "quantized_linear/quantized_rows.h"

namespace apt_fast {
namespace APT_SIMD_NS {

// Rows [m_begin, m_end) of x as fp32 rows of kp values (kp >= k), zero past k; round_bf16: through bf16 first
// (rounded to nearest even from fp32; bf16 input is exact either way).
inline void float_rows(const void* x, int64_t x_stride, Dtype dtype, bool round_bf16, int64_t m_begin, int64_t m_end,
                       int64_t k, int64_t kp, float* out) {
  for (int64_t m = m_begin; m < m_end; ++m) {
    float* dst = out + m * kp;
    if (dtype == Dtype::Float32) {
      const float* src = static_cast<const float*>(x) + m * x_stride;
      if (round_bf16) {
        alignas(64) uint16_t half[Vec::size];
        int64_t i = 0;
        for (; i + Vec::size <= k; i += Vec::size) {
          Vec::load(src + i).store(half);
          Vec::load(half).store(dst + i);
        }
        for (; i < k; ++i) {
          Vec::load_partial(src + i, 1, 0.0f).store_partial(half, 1);
          Vec::load_partial(half, 1, 0.0f).store_partial(dst + i, 1);
        }
      } else {
        std::memcpy(dst, src, k * sizeof(float));
      }
    } else {
      const uint16_t* src = static_cast<const uint16_t*>(x) + m * x_stride;
      int64_t i = 0;
      for (; i + Vec::size <= k; i += Vec::size) Vec::load(src + i).store(dst + i);
      for (; i < k; ++i) dst[i] = load_scalar(src, Dtype::BFloat16, i);
    }
    std::memset(dst + k, 0, (kp - k) * sizeof(float));
  }
}

// out[c * mp + i] = x[i][c] as fp32 (rounded through bf16 when round_bf16) for c < k, i < m; zero for m <= i < mp.
inline void transposed_rows(const void* x, int64_t x_stride, Dtype dtype, bool round_bf16, int64_t m, int64_t k,
                            int64_t mp, float* out, int num_threads) {
  constexpr int64_t kTile = 64;  // columns per task
  parallel_for((k + kTile - 1) / kTile, num_threads, [&](int64_t begin, int64_t end) {
    std::vector<float> row(kTile);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t c0 = t * kTile, count = std::min(kTile, k - c0);
      for (int64_t c = c0; c < c0 + count; ++c) std::memset(out + c * mp + m, 0, (mp - m) * sizeof(float));
      for (int64_t i = 0; i < m; ++i) {
        const size_t element = dtype == Dtype::Float32 ? 4 : 2;
        float_rows(static_cast<const char*>(x) + (i * x_stride + c0) * element, 0, dtype, round_bf16, 0, 1, count,
                   count, row.data());
        for (int64_t c = 0; c < count; ++c) out[(c0 + c) * mp + i] = row[c];
      }
    }
  });
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
