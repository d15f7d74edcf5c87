// Sixteen-lane Vec on AVX-512 (F, BW, VL, DQ, BF16).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace apt_fast {
namespace APT_SIMD_NS {

struct Vec {
  using Mask = __mmask16;
  static constexpr int size = 16;
  __m512 v;

  Vec() = default;
  Vec(__m512 x) : v(x) {}
  Vec(float x) : v(_mm512_set1_ps(x)) {}
  static Vec broadcast(float x) { return Vec(x); }
  static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  static Vec load(const uint16_t* p) {
    __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  static Mask tail_mask(int n) { return static_cast<Mask>((1u << n) - 1u); }
  static Vec load_partial(const float* p, int n, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), tail_mask(n), p);
  }
  static Vec load_partial(const uint16_t* p, int n, float fill) {
    __m256i half = _mm256_maskz_loadu_epi16(tail_mask(n), p);
    __m512 x = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
    return _mm512_mask_blend_ps(tail_mask(n), _mm512_set1_ps(fill), x);
  }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void stream(float* p) const { _mm512_stream_ps(p, v); }  // p 64-byte aligned; fence() before others read
  static void fence() { _mm_sfence(); }
  void store(uint16_t* p) const {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(v));
  }
  void store_partial(float* p, int n) const { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
  void store_partial(uint16_t* p, int n) const {
    _mm256_mask_storeu_epi16(p, tail_mask(n), (__m256i)_mm512_cvtneps_pbh(v));
  }

  friend Vec operator+(Vec a, Vec b) { return _mm512_add_ps(a.v, b.v); }
  friend Vec operator-(Vec a, Vec b) { return _mm512_sub_ps(a.v, b.v); }
  friend Vec operator*(Vec a, Vec b) { return _mm512_mul_ps(a.v, b.v); }
  friend Vec operator/(Vec a, Vec b) { return _mm512_div_ps(a.v, b.v); }
  friend Mask operator<(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ); }
  friend Mask operator>(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ); }
  friend Mask operator==(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ); }
  static Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a.v, b.v, c.v); }
  static Vec max(Vec a, Vec b) { return _mm512_max_ps(a.v, b.v); }
  static Vec min(Vec a, Vec b) { return _mm512_min_ps(a.v, b.v); }
  static Vec select(Mask m, Vec a, Vec b) { return _mm512_mask_blend_ps(m, b.v, a.v); }
  static bool any(Mask m) { return m != 0; }
  static Vec gather(const float* base, Vec index) { return _mm512_i32gather_ps(_mm512_cvttps_epi32(index.v), base, 4); }
  float reduce_add() const { return _mm512_reduce_add_ps(v); }
  float reduce_max() const { return _mm512_reduce_max_ps(v); }
  static Vec pow2n(Vec n) {
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127)), 23);
    return _mm512_castsi512_ps(bits);
  }
  static Vec frexp(Vec x, Vec* exponent) {
    // getexp gives floor(log2 x); the mantissa in [1, 2) is halved into [0.5, 1).
    *exponent = _mm512_add_ps(_mm512_getexp_ps(x.v), _mm512_set1_ps(1.0f));
    return _mm512_mul_ps(_mm512_getmant_ps(x.v, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src), _mm512_set1_ps(0.5f));
  }
  static Vec expand(const float* packed, unsigned bits) {
    return _mm512_maskz_expandloadu_ps(static_cast<Mask>(bits), packed);
  }
  static Vec expand(const uint16_t* packed, unsigned bits) {  // VBMI2 word expand, then bf16 -> fp32
    __m256i halves = _mm256_maskz_expandloadu_epi16(static_cast<Mask>(bits), packed);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
  }
  static Vec compress(Vec v, unsigned bits) { return _mm512_maskz_compress_ps(static_cast<Mask>(bits), v.v); }
  static Vec iota() { return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static Vec round(Vec x) { return _mm512_roundscale_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
};

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
