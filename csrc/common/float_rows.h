// Activation rows of the N:M kernels, prepared once per call (include after common/simd/vec.h): fp32 rows (for bf16
// values rounded to bf16 first), padded with zero columns up to kp.
#pragma once

#include <cstring>

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

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
