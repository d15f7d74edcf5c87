// Decoding 8-bit sign-magnitude codes (CodePanels) to bf16 on AVX-512: the magnitude indexes two 128-entry byte
// tables (low and high byte of its bf16 value, VPERMI2B ignores bit 7), the sign bit is ORed into the high byte,
// and an in-lane unpack of (low, high) gives the two VNNI-2 bf16 rows the panel's byte order was made for.
// About 5 instructions per 64 weights. Include only where AVX-512 VBMI is enabled.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "quantized_linear/quantized_linear.h"

namespace apt_fast {

struct CodeDecoder {
  __m512i low0, low1, high0, high1;  // table entries 0-63 and 64-127

  explicit CodeDecoder(CodeFormat format) {
    alignas(64) uint8_t low[128], high[128];
    for (int code = 0; code < 128; ++code) {
      const uint16_t bits = code_magnitude_bf16(format, code);
      low[code] = static_cast<uint8_t>(bits & 0xff);
      high[code] = static_cast<uint8_t>(bits >> 8);
    }
    low0 = _mm512_load_si512(low);
    low1 = _mm512_load_si512(low + 64);
    high0 = _mm512_load_si512(high);
    high1 = _mm512_load_si512(high + 64);
  }

  // 64 code bytes (one panel row: 4 inputs of 16 channels) -> bf16 rows for inputs (4r, 4r+1) and (4r+2, 4r+3).
  void decode(__m512i codes, __m512i* pair0, __m512i* pair1) const {
    const __m512i low = _mm512_permutex2var_epi8(low0, codes, low1);
    __m512i high = _mm512_permutex2var_epi8(high0, codes, high1);
    high = _mm512_ternarylogic_epi32(high, codes, _mm512_set1_epi8(static_cast<char>(0x80)), 0xF8);  // h | (c & s)
    *pair0 = _mm512_unpacklo_epi8(low, high);
    *pair1 = _mm512_unpackhi_epi8(low, high);
  }
};

}  // namespace apt_fast
