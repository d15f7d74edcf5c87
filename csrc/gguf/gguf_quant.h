// ggml's legacy block quantizations (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), byte-identical to gguf-py's
// reference quantizer (gguf.quants.quantize), its float32 -> float16 scale conversion, and the
// float32 -> F16 / BF16 tensor conversions of GGUF's 16-bit float types.
//
// Every type quantizes blocks of 32 floats into one record of type_size bytes (little-endian):
//   Q8_0  34 B: d f16 | qs int8[32]                x = d * q
//   Q4_0  18 B: d f16 | qs u8[16]                  x = d * (q - 8),  q in [0, 15]
//   Q4_1  20 B: d f16 | m f16 | qs u8[16]          x = d * q + m,    q in [0, 15]
//   Q5_0  22 B: d f16 | qh u32 | qs u8[16]         x = d * (q - 16), q in [0, 31]
//   Q5_1  24 B: d f16 | m f16 | qh u32 | qs u8[16] x = d * q + m,    q in [0, 31]
// Nibbles: qs[j] = (q[j] & 15) | (q[j + 16] << 4); fifth bits: bit j of qh = bit 4 of q[j].
#pragma once

#include <cstdint>
#include <cstring>

#include "common/checks.h"
#include "common/dispatch.h"

namespace apt_fast {

// Values are ggml's type ids (enum ggml_type), which GGUF stores in its tensor infos.
enum class GgufQuantType : int { Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8 };

constexpr int64_t kGgufBlockSize = 32;

// Bytes of one 32-element block of `type`.
int64_t gguf_type_size(GgufQuantType type);

// IEEE binary16 bits of x, rounded to nearest even (overflow to infinity, subnormals kept), as
// numpy's float32 -> float16 cast; the inline form is the one the kernels use per block.
inline uint16_t fp32_to_fp16_bits_inline(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs_bits = bits & 0x7fffffffu;
  if (abs_bits > 0x7f800000u) {  // NaN: keep the top payload bits (at least one), as numpy does
    const uint16_t payload = static_cast<uint16_t>((abs_bits >> 13) & 0x3ffu);
    return sign | 0x7c00u | (payload != 0 ? payload : 1u);
  }
  if (abs_bits >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 (or inf) rounds to infinity
  uint32_t mantissa, shift;
  if (abs_bits >= 0x38800000u) {  // normal half: rebias the exponent, drop 13 mantissa bits
    mantissa = abs_bits - 0x38000000u;
    shift = 13;
  } else {  // subnormal half (or zero): value / 2^-24 with the implicit bit made explicit
    if (abs_bits < 0x33000000u) return sign;  // below 2^-25, or a tie at 2^-25: zero
    mantissa = (abs_bits & 0x7fffffu) | 0x800000u;
    shift = 126u - (abs_bits >> 23);
  }
  uint32_t half_bits = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1u);
  const uint32_t tie = 1u << (shift - 1u);
  if (rest > tie || (rest == tie && (half_bits & 1u))) ++half_bits;  // round to nearest, ties to even
  return sign | static_cast<uint16_t>(half_bits);
}
uint16_t fp32_to_fp16_bits(float x);

// Quantizes n floats (n a multiple of 32) into n / 32 * gguf_type_size(type) bytes at dst,
// blocks split over num_threads threads. Validates, then runs the kernel of the active SIMD level.
void gguf_quantize(const float* src,  // [n] fp32
                   int64_t n, GgufQuantType type,
                   uint8_t* dst,  // [n / 32 * type_size] out
                   int num_threads);

// The per-tier kernels (gguf_quant_kernels.cpp): n_blocks blocks, arguments already checked.
APT_FAST_DECLARE_TIERS(void gguf_quantize_blocks(const float* src, int64_t n_blocks, GgufQuantType type, uint8_t* dst,
                                                int num_threads))

// GGUF's 16-bit float tensor types: F16 (IEEE binary16) and BF16, by their ggml type ids.
enum class GgufFloatType : int { F16 = 1, BF16 = 30 };

// Converts n floats to 16-bit bits at dst, rounding to nearest even, as gguf-py (and numpy) do:
// F16 overflows to infinity and keeps subnormals; BF16 keeps NaNs NaN with the quiet bit set.
// Chunks are shared out over num_threads threads. Validates, then runs the active SIMD level.
void gguf_convert_float(const float* src,  // [n] fp32
                        int64_t n, GgufFloatType type,
                        uint16_t* dst,  // [n] out
                        int num_threads);

// The per-tier kernels (gguf_float_kernels.cpp), arguments already checked.
APT_FAST_DECLARE_TIERS(void gguf_convert_float(const float* src, int64_t n, GgufFloatType type, uint16_t* dst,
                                              int num_threads))

}  // namespace apt_fast
