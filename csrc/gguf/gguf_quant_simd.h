// The integer steps of the GGUF block quantizers, for the SIMD level this translation unit is
// compiled for (the float steps use Vec). Each works on the Vec::size lanes of one Vec:
//   Lanes lanes_trunc(Vec y)                 int32 trunc(y); INT32_MIN for NaN and out-of-range values
//                                            (x86's cvtt result, which numpy's float -> int casts give)
//   Lanes clamp_level(Lanes q, int top)      min(q & 255, top): numpy's uint8 cast, then clip(0, top)
//   void store_low_bytes(Lanes q, uint8_t* p)        p[i] = low byte of lane i            (size bytes)
//   void store_nibbles(Lanes lo, Lanes hi, uint8_t* p) p[i] = (lo_i & 15) | (hi_i << 4)    (size bytes)
//   uint32_t bit4_mask(Lanes q)              bit i = bit 4 of lane i
//   uint16_t fp16_bits(float x)              IEEE binary16 bits of x, round to nearest even
//   Vec abs_bits(Vec y)                      |y| by clearing the sign bit (|-0| = +0, as numpy's abs)
//   Vec with_sign_of(Vec r, Vec y)           r (non-negative) with the sign bit of y
//   Vec lanes_max(const Vec* m)              lane b = max of the lanes of m[b], b < size: the statistics
//                                            of a group's blocks gathered into one Vec (exact: max and
//                                            min only ever pick one of their inputs)
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "gguf/gguf_quant.h"
#include "common/simd/vec.h"

#if APT_SIMD_LEVEL >= 1
#include <immintrin.h>
#endif

namespace apt_fast {
namespace APT_SIMD_NS {

#if APT_SIMD_LEVEL == 2

using Lanes = __m512i;
inline Lanes lanes_trunc(Vec y) { return _mm512_cvttps_epi32(y.v); }
inline Lanes clamp_level(Lanes q, int top) {
  return _mm512_min_epu32(_mm512_and_si512(q, _mm512_set1_epi32(255)), _mm512_set1_epi32(top));
}
inline void store_low_bytes(Lanes q, uint8_t* p) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(q));
}
inline void store_nibbles(Lanes lo, Lanes hi, uint8_t* p) {
  store_low_bytes(_mm512_or_si512(_mm512_and_si512(lo, _mm512_set1_epi32(15)), _mm512_slli_epi32(hi, 4)), p);
}
inline uint32_t bit4_mask(Lanes q) { return _mm512_test_epi32_mask(q, _mm512_set1_epi32(16)); }
inline uint16_t fp16_bits(float x) { return _cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT); }
inline Vec abs_bits(Vec y) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(y.v), _mm512_set1_epi32(0x7fffffff))); }
inline Vec with_sign_of(Vec r, Vec y) {
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(y.v), _mm512_set1_epi32(INT32_MIN));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r.v), sign));
}
// A transpose that reduces as it goes: 16 Vecs -> 8 (pairs interleaved within 128-bit lanes) -> 4 (four
// blocks per 128-bit lane) -> 2 -> 1 (128-bit lane i holds blocks 4i .. 4i + 3).
inline Vec lanes_max(const Vec* m) {
  __m512 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i) {
    a[i] = _mm512_max_ps(_mm512_unpacklo_ps(m[2 * i].v, m[2 * i + 1].v), _mm512_unpackhi_ps(m[2 * i].v, m[2 * i + 1].v));
  }
  for (int i = 0; i < 4; ++i) {
    b[i] = _mm512_max_ps(_mm512_shuffle_ps(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  for (int i = 0; i < 2; ++i) {
    c[i] = _mm512_max_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  }
  return _mm512_max_ps(_mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

#elif APT_SIMD_LEVEL == 1

using Lanes = __m256i;
inline Lanes lanes_trunc(Vec y) { return _mm256_cvttps_epi32(y.v); }
inline Lanes clamp_level(Lanes q, int top) {
  return _mm256_min_epu32(_mm256_and_si256(q, _mm256_set1_epi32(255)), _mm256_set1_epi32(top));
}
inline void store_low_bytes(Lanes q, uint8_t* p) {
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i bytes = _mm256_shuffle_epi8(q, pick);  // 4 bytes at the bottom of each 128-bit half
  const __m128i joined = _mm_unpacklo_epi32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), joined);
}
inline void store_nibbles(Lanes lo, Lanes hi, uint8_t* p) {
  store_low_bytes(_mm256_or_si256(_mm256_and_si256(lo, _mm256_set1_epi32(15)), _mm256_slli_epi32(hi, 4)), p);
}
inline uint32_t bit4_mask(Lanes q) {
  return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(q, 27))));
}
inline uint16_t fp16_bits(float x) { return _cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT); }
inline Vec abs_bits(Vec y) { return _mm256_and_ps(y.v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
inline Vec with_sign_of(Vec r, Vec y) {
  return _mm256_or_ps(r.v, _mm256_and_ps(y.v, _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN))));
}
// 8 Vecs -> 4 (pairs interleaved within 128-bit lanes) -> 2 (four blocks per 128-bit lane) -> 1.
inline Vec lanes_max(const Vec* m) {
  __m256 a[4], b[2];
  for (int i = 0; i < 4; ++i) {
    a[i] = _mm256_max_ps(_mm256_unpacklo_ps(m[2 * i].v, m[2 * i + 1].v), _mm256_unpackhi_ps(m[2 * i].v, m[2 * i + 1].v));
  }
  for (int i = 0; i < 2; ++i) {
    b[i] = _mm256_max_ps(_mm256_shuffle_ps(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm256_shuffle_ps(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  return _mm256_max_ps(_mm256_permute2f128_ps(b[0], b[1], 0x20), _mm256_permute2f128_ps(b[0], b[1], 0x31));
}

#else

struct Lanes {
  int32_t v[Vec::size];
};
inline Lanes lanes_trunc(Vec y) {
  Lanes q;
  for (int i = 0; i < Vec::size; ++i) {
    const float f = y.v[i];
    q.v[i] = (f > -2147483648.0f && f < 2147483648.0f) ? static_cast<int32_t>(f) : INT32_MIN;
  }
  return q;
}
inline Lanes clamp_level(Lanes q, int top) {
  for (int32_t& lane : q.v) lane = (lane & 255) < top ? (lane & 255) : top;
  return q;
}
inline void store_low_bytes(Lanes q, uint8_t* p) {
  for (int i = 0; i < Vec::size; ++i) p[i] = static_cast<uint8_t>(q.v[i]);
}
inline void store_nibbles(Lanes lo, Lanes hi, uint8_t* p) {
  for (int i = 0; i < Vec::size; ++i) p[i] = static_cast<uint8_t>((lo.v[i] & 15) | (hi.v[i] << 4));
}
inline uint32_t bit4_mask(Lanes q) {
  uint32_t mask = 0;
  for (int i = 0; i < Vec::size; ++i) mask |= static_cast<uint32_t>((q.v[i] >> 4) & 1) << i;
  return mask;
}
inline uint16_t fp16_bits(float x) { return fp32_to_fp16_bits_inline(x); }
inline Vec abs_bits(Vec y) {
  for (float& lane : y.v) lane = std::fabs(lane);
  return y;
}
inline Vec with_sign_of(Vec r, Vec y) {
  for (int i = 0; i < Vec::size; ++i) r.v[i] = std::copysign(r.v[i], y.v[i]);
  return r;
}
inline Vec lanes_max(const Vec* m) {
  Vec r;
  for (int b = 0; b < Vec::size; ++b) r.v[b] = m[b].reduce_max();
  return r;
}

#endif

// lane b = min of the lanes of m[b]: -max(-m), exact sign flips.
inline Vec lanes_min(const Vec* m) {
  Vec negated[Vec::size];
  for (int b = 0; b < Vec::size; ++b) negated[b] = m[b] * Vec(-1.0f);
  return lanes_max(negated) * Vec(-1.0f);
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
