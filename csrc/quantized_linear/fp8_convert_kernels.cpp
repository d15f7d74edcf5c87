// fp32 / bf16 -> FP8 (e4m3fn, e5m2) with a scale per group of inputs, rounding to nearest even exactly as torch's
// Tensor.to(float8_*) does (c10's fp8e4m3fn_from_fp32_value / fp8e5m2_from_fp32_value): e4m3fn has no
// infinities, so |v| >= 480 (and inf, NaN) become NaN; e5m2 overflows to inf. With saturate, finite values beyond
// the largest code (448, 57344) become it instead. Written as plain per-element bit arithmetic that the compiler
// vectorizes for each tier.
#include <cstring>

#include "common/parallel_for.h"
#include "common/simd/vec.h"
#include "quantized_linear/quantized_rows.h"

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

inline uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

inline float float_of(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

inline uint8_t to_e4m3(float f) {
  uint32_t b = bits_of(f);
  const uint32_t sign = b & 0x80000000u;
  b ^= sign;
  uint8_t result;
  if (b >= (1087u << 20)) {  // >= 480, inf or NaN
    result = 0x7f;
  } else if (b < (121u << 23)) {  // below 2^-6: a subnormal (or zero), rounded by an fp32 addition
    const uint32_t denorm = 141u << 23;
    result = static_cast<uint8_t>(bits_of(float_of(b) + float_of(denorm)) - denorm);
  } else {
    const uint32_t odd = (b >> 20) & 1u;
    b += (static_cast<uint32_t>(7 - 127) << 23) + 0x7ffffu + odd;
    result = static_cast<uint8_t>(b >> 20);
  }
  return static_cast<uint8_t>(result | (sign >> 24));
}

inline uint8_t to_e5m2(float f) {
  uint32_t b = bits_of(f);
  const uint32_t sign = b & 0x80000000u;
  b ^= sign;
  uint8_t result;
  if (b >= (143u << 23)) {  // >= 65536, inf or NaN
    result = b > (255u << 23) ? 0x7f : 0x7c;
  } else if (b < (113u << 23)) {  // below 2^-14
    const uint32_t denorm = 134u << 23;
    result = static_cast<uint8_t>(bits_of(float_of(b) + float_of(denorm)) - denorm);
  } else {
    const uint32_t odd = (b >> 21) & 1u;
    b += (static_cast<uint32_t>(15 - 127) << 23) + 0xfffffu + odd;
    result = static_cast<uint8_t>(b >> 21);
  }
  return static_cast<uint8_t>(result | (sign >> 24));
}

template <CodeFormat F>
void convert_rows(const Fp8QuantizeArgs& a, int64_t begin, int64_t end) {
  const float largest = F == CodeFormat::E4M3 ? 448.0f : 57344.0f;
  const int64_t groups = a.cols / a.group_size;
  for (int64_t r = begin; r < end; ++r) {
    uint8_t* out = a.codes + r * a.cols;
    for (int64_t g = 0; g < groups; ++g) {
      const float scale = a.scales[r * groups + g];
      for (int64_t i = g * a.group_size; i < (g + 1) * a.group_size; ++i) {
        float v = load_scalar(a.x, a.x_dtype, r * a.x_stride + i) / scale;
        if (a.saturate) v = v > largest ? largest : (v < -largest ? -largest : v);  // NaN stays NaN
        out[i] = F == CodeFormat::E4M3 ? to_e4m3(v) : to_e5m2(v);
      }
    }
  }
}

}  // namespace

void fp8_quantize_kernel(const Fp8QuantizeArgs& a) {
  parallel_for(a.rows, a.num_threads, [&](int64_t begin, int64_t end) {
    if (a.format == CodeFormat::E4M3) convert_rows<CodeFormat::E4M3>(a, begin, end);
    else convert_rows<CodeFormat::E5M2>(a, begin, end);
  });
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
