// Eight-lane Vec on AVX2 + FMA.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace apt_fast {
namespace APT_SIMD_NS {

// Lane permutations of expand / compress for each 8-bit lane mask: expand[bits][lane] = which packed value lane
// takes (7 where its bit is clear: lane 7 of a load of fewer than 8 values is zero); compress[bits][j] = the
// lane of the j-th set bit.
struct LanePermutes {
  int32_t expand[256][8];
  int32_t compress[256][8];
};

constexpr LanePermutes make_lane_permutes() {
  LanePermutes t{};
  for (int bits = 0; bits < 256; ++bits) {
    int next = 0;
    for (int lane = 0; lane < 8; ++lane) {
      t.expand[bits][lane] = 7;
      if ((bits >> lane) & 1) {
        t.expand[bits][lane] = next;
        t.compress[bits][next++] = lane;
      }
    }
  }
  return t;
}

alignas(32) inline constexpr LanePermutes kLanePermutes = make_lane_permutes();

struct Vec {
  using Mask = __m256;
  static constexpr int size = 8;
  __m256 v;

  Vec() = default;
  Vec(__m256 x) : v(x) {}
  Vec(float x) : v(_mm256_set1_ps(x)) {}
  static Vec broadcast(float x) { return Vec(x); }
  static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  static Vec load(const uint16_t* p) {
    __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  template <class T>
  static Vec load_partial(const T* p, int n, float fill) {
    alignas(32) T buffer[size];
    for (int i = 0; i < size; ++i) buffer[i] = i < n ? p[i] : T{};
    return select(iota() < Vec(static_cast<float>(n)), load(buffer), Vec(fill));
  }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void stream(float* p) const { _mm256_stream_ps(p, v); }  // p 32-byte aligned; fence() before others read
  static void fence() { _mm_sfence(); }
  void store(uint16_t* p) const {
    // Round to nearest even on the upper 16 bits; NaN stays NaN (quiet bit set).
    __m256i bits = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    __m256i nan = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
    __m256i is_nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    __m256i halves = _mm256_blendv_epi8(rounded, nan, is_nan);
    __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(halves), _mm256_extracti128_si256(halves, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
  }
  template <class T>
  void store_partial(T* p, int n) const {
    alignas(32) T buffer[size];
    store(buffer);
    for (int i = 0; i < n; ++i) p[i] = buffer[i];
  }

  friend Vec operator+(Vec a, Vec b) { return _mm256_add_ps(a.v, b.v); }
  friend Vec operator-(Vec a, Vec b) { return _mm256_sub_ps(a.v, b.v); }
  friend Vec operator*(Vec a, Vec b) { return _mm256_mul_ps(a.v, b.v); }
  friend Vec operator/(Vec a, Vec b) { return _mm256_div_ps(a.v, b.v); }
  friend Mask operator<(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ); }
  friend Mask operator>(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ); }
  friend Mask operator==(Vec a, Vec b) { return _mm256_cmp_ps(a.v, b.v, _CMP_EQ_OQ); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a.v, b.v, c.v); }
  static Vec max(Vec a, Vec b) { return _mm256_max_ps(a.v, b.v); }
  static Vec min(Vec a, Vec b) { return _mm256_min_ps(a.v, b.v); }
  static Vec select(Mask m, Vec a, Vec b) { return _mm256_blendv_ps(b.v, a.v, m); }
  static bool any(Mask m) { return _mm256_movemask_ps(m) != 0; }
  static Vec gather(const float* base, Vec index) { return _mm256_i32gather_ps(base, _mm256_cvttps_epi32(index.v), 4); }
  float reduce_add() const {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  float reduce_max() const {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static Vec pow2n(Vec n) {
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127)), 23);
    return _mm256_castsi256_ps(bits);
  }
  static Vec frexp(Vec x, Vec* exponent) {
    // Normal inputs only (denormals are treated as tiny normals; their terms vanish anyway).
    __m256i bits = _mm256_castps_si256(x.v);
    __m256i biased = _mm256_srli_epi32(bits, 23);
    *exponent = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_and_si256(biased, _mm256_set1_epi32(0xFF))), _mm256_set1_ps(126.0f));
    __m256i mantissa = _mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x807FFFFF)), _mm256_set1_epi32(0x3F000000));
    return _mm256_castsi256_ps(mantissa);
  }
  static __m256i lanes_below(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static __m256i permute(const int32_t* table, unsigned bits) {
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(table + 8 * (bits & 0xFF)));
  }
  static Vec expand(const float* packed, unsigned bits) {
    const __m256 values = _mm256_maskload_ps(packed, lanes_below(__builtin_popcount(bits & 0xFF)));
    return _mm256_permutevar8x32_ps(values, permute(&kLanePermutes.expand[0][0], bits));
  }
  static Vec expand(const uint16_t* packed, unsigned bits) {
    alignas(16) uint16_t buffer[size] = {};
    std::memcpy(buffer, packed, 2 * __builtin_popcount(bits & 0xFF));
    const __m256 values = load(buffer).v;
    return _mm256_permutevar8x32_ps(values, permute(&kLanePermutes.expand[0][0], bits));
  }
  static Vec compress(Vec v, unsigned bits) {
    return _mm256_permutevar8x32_ps(v.v, permute(&kLanePermutes.compress[0][0], bits));
  }
  static Vec iota() { return _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7); }
  static Vec round(Vec x) { return _mm256_round_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
};

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
