// Per-row preparation of activations and the shared epilogues of the quantized linear kernels, written once
// against Vec (include after common/simd/vec.h; used by the vector tiers and the AMX translation unit).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quantized_linear/quantized_linear.h"

namespace apt_fast {
namespace APT_SIMD_NS {

inline float load_scalar(const void* x, Dtype dtype, int64_t i) {
  if (dtype == Dtype::Float32) return static_cast<const float*>(x)[i];
  const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(x)[i]) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// max |x[0:k]| of one row (fp32 or bf16).
inline float row_amax(const void* row, Dtype dtype, int64_t k) {
  Vec amax(0.0f);
  int64_t i = 0;
  for (; i + Vec::size <= k; i += Vec::size) {
    const Vec v = dtype == Dtype::Float32 ? Vec::load(static_cast<const float*>(row) + i)
                                          : Vec::load(static_cast<const uint16_t*>(row) + i);
    amax = Vec::max(amax, Vec::max(v, Vec(0.0f) - v));
  }
  float result = amax.reduce_max();
  for (; i < k; ++i) result = std::max(result, std::fabs(load_scalar(row, dtype, i)));
  return result;
}

// Rows [m_begin, m_end) of x quantized symmetrically per row and group of group_size inputs (quantized_linear.h,
// Int8LinearArgs) and stored as int8 rows of kp bytes plus `offset` (0: signed; 128: unsigned, for u8 x s8
// products); tails past k meet the zero weights of the padding:
//   8 bits:  one row per activation row, q + offset;
//   16 bits: two rows per activation row, h + offset and (l - 128) + offset, so both halves are int8 too.
// scale[m * groups + g] = amax / 127 or amax / 32767 (0 for an all-zero group).
inline void quantize_rows(const void* x, int64_t x_stride, Dtype dtype, int bits, int64_t m_begin, int64_t m_end,
                          int64_t k, int64_t kp, int64_t group_size, int offset, uint8_t* out, float* scale) {
  const size_t element = dtype == Dtype::Float32 ? 4 : 2;
  const float limit = bits == 8 ? 127.0f : 32767.0f;
  const int64_t groups = k / group_size;
  for (int64_t m = m_begin; m < m_end; ++m) {
    const char* row = static_cast<const char*>(x) + m * x_stride * element;
    uint8_t* first = out + (bits == 8 ? m : 2 * m) * kp;
    uint8_t* second = first + kp;  // 16 bits: the low bytes
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t k0 = g * group_size;
      const void* part = row + k0 * element;
      const float amax = row_amax(part, dtype, group_size);
      const float inv = amax > 0.0f ? limit / amax : 0.0f;
      scale[m * groups + g] = amax / limit;
      for (int64_t i = 0; i < group_size; ++i) {
        const float r = std::nearbyint(load_scalar(part, dtype, i) * inv);
        const int q = static_cast<int>(std::min(limit, std::max(-limit, r)));
        if (bits == 8) {
          first[k0 + i] = static_cast<uint8_t>(q + offset);
        } else {
          const int h = q >> 8;  // floor(q / 256): arithmetic shift
          first[k0 + i] = static_cast<uint8_t>(h + offset);
          second[k0 + i] = static_cast<uint8_t>(q - 256 * h - 128 + offset);
        }
      }
    }
    std::memset(first + k, offset, kp - k);
    if (bits == 16) std::memset(second + k, offset, kp - k);
  }
}

// Rows [m_begin, m_end) of x as bf16 (rounded to nearest even from fp32; copied from bf16) in rows of kp values,
// zero past k.
inline void bf16_rows(const void* x, int64_t x_stride, Dtype dtype, int64_t m_begin, int64_t m_end, int64_t k,
                      int64_t kp, uint16_t* out) {
  for (int64_t m = m_begin; m < m_end; ++m) {
    uint16_t* dst = out + m * kp;
    if (dtype == Dtype::BFloat16) {
      std::memcpy(dst, static_cast<const uint16_t*>(x) + m * x_stride, k * 2);
    } else {
      const float* src = static_cast<const float*>(x) + m * x_stride;
      int64_t i = 0;
      for (; i + Vec::size <= k; i += Vec::size) Vec::load(src + i).store(dst + i);
      if (i < k) Vec::load_partial(src + i, static_cast<int>(k - i), 0.0f).store_partial(dst + i, static_cast<int>(k - i));
    }
    std::memset(dst + k, 0, (kp - k) * 2);
  }
}

// Stores n values of one output row (fp32 or bf16, rounded to nearest even) from fp32 `values`.
inline void store_row(const float* values, int64_t n, void* y, Dtype dtype) {
  int64_t i = 0;
  if (dtype == Dtype::Float32) {
    std::memcpy(y, values, n * 4);
    return;
  }
  uint16_t* dst = static_cast<uint16_t*>(y);
  for (; i + Vec::size <= n; i += Vec::size) Vec::load(values + i).store(dst + i);
  if (i < n) Vec::load_partial(values + i, static_cast<int>(n - i), 0.0f).store_partial(dst + i, static_cast<int>(n - i));
}

// y[m, n0 + j] = total[j] + bias[n0 + j] for j < count (no bias: total as it is).
inline void add_bias_row(float* total, int64_t count, const float* bias, int64_t n0) {
  if (bias == nullptr) return;
  int64_t j = 0;
  for (; j + Vec::size <= count; j += Vec::size) (Vec::load(total + j) + Vec::load(bias + n0 + j)).store(total + j);
  for (; j < count; ++j) total[j] = total[j] + bias[n0 + j];
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
