// The bf16 products of the attention kernels (include after simd/vec.h): operands are packed per tile into the
// kernel's scratch, then Bf16Gemm computes C[m, n] (+)= A[m, k] . B[k, n] with fp32 accumulation.
//
//   A  row-major, leading dimension lda >= padded_k(k), zero in columns [k, padded_k(k)); padded_mn(m) rows
//      readable (what they give lands in C's padding rows).
//   B  VNNI-2: [padded_k(k) / 2][ldb][2], the two k-consecutive values of a column side by side, zero past k
//      and in columns [n, padded_mn(n)); b_at(b, ldb, k0, j0) is row k0 (even), column j0.
//   C  fp32, leading dimension ldc: padded_mn(m) rows and padded_mn(n) columns are written.
//
// AVX-512 tier: vdpbf16ps (an A pair broadcast, times a 32-bf16 row of B) into up to 4 x 64 fp32 accumulators.
// AMX tier: TDPBF16PS tiles (bf16_tiles_amx.cpp). Scalar and AVX2 tiers, which have no bf16 arithmetic: the
// operands are fp32 holding the bf16 values (B row-major [k][ldb]) and the fp32 micro-kernel multiplies them.
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/cpu_features.h"
#include "flash_attention/attention_tiles.h"
#if APT_SIMD_LEVEL == 2
#include "flash_attention/bf16_tiles_amx.h"
#endif

namespace apt_fast {
namespace APT_SIMD_NS {

#if APT_SIMD_LEVEL >= 2
using Operand = uint16_t;        // bf16 bits
constexpr int kPadK = 32;        // an AMX tile's k step
constexpr int kPadMN = 16;       // an AMX tile's rows; a vector of fp32
constexpr int kPairs = 2;        // VNNI-2
#else
using Operand = float;
constexpr int kPadK = 1, kPadMN = 1, kPairs = 1;
#endif

inline int64_t padded_k(int64_t k) { return (k + kPadK - 1) / kPadK * kPadK; }
inline int64_t padded_mn(int64_t n) { return (n + kPadMN - 1) / kPadMN * kPadMN; }

template <class P>
inline P* b_at(P* b, int64_t ldb, int64_t k0, int64_t j0) { return b + k0 * ldb + j0 * kPairs; }

inline float bf16_value(uint16_t x) {
  const uint32_t bits = static_cast<uint32_t>(x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

inline uint16_t bf16_bits(float x) {  // round to nearest even; NaN stays NaN
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  if (x != x) return static_cast<uint16_t>((bits >> 16) | 0x40);
  return static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}

#if APT_SIMD_LEVEL >= 2
inline Operand as_operand(uint16_t x) { return x; }
inline Operand as_operand(float x) { return bf16_bits(x); }
#else
inline Operand as_operand(uint16_t x) { return bf16_value(x); }
inline Operand as_operand(float x) { return bf16_value(bf16_bits(x)); }
#endif

// dst[0, n) = src[0, n) as operands (fp32 rounded to bf16).
inline void to_operands(const uint16_t* src, int n, Operand* dst) {
#if APT_SIMD_LEVEL >= 2
  std::memcpy(dst, src, n * sizeof(uint16_t));
#else
  for (int c = 0; c < n; c += Vec::size) {
    const int w = std::min(Vec::size, n - c);
    store_n(dst + c, w, Vec::load_partial(src + c, w, 0.0f));
  }
#endif
}

inline void to_operands(const float* src, int n, Operand* dst) {
  for (int c = 0; c < n; c += Vec::size) {
    const int w = std::min(Vec::size, n - c);
#if APT_SIMD_LEVEL >= 2
    if (w == Vec::size) load_n(src + c, w).store(dst + c); else load_n(src + c, w).store_partial(dst + c, w);
#else
    uint16_t half[Vec::size];
    load_n(src + c, w).store_partial(half, w);
    store_n(dst + c, w, Vec::load_partial(half, w, 0.0f));
#endif
  }
}

// A = src [rows, k] (row stride ld): dst [rows][lda], zero in [k, padded_k(k)).
template <class S>
inline void pack_a_rows(const S* src, int64_t ld, int rows, int k, Operand* dst, int64_t lda) {
  const int kp = static_cast<int>(padded_k(k));
  for (int r = 0; r < rows; ++r) {
    to_operands(src + r * ld, k, dst + r * lda);
    std::fill(dst + r * lda + k, dst + r * lda + kp, Operand(0));
  }
}

#if APT_SIMD_LEVEL >= 2
// Element offsets of `count` rows of stride ld from lane `first` on, for 32-bit gathers (scale 2); false when
// they do not fit in 32 bits.
inline bool row_offsets(int64_t ld, int first, __m512i* offsets) {
  if ((first + 16) * ld > INT32_MAX) return false;
  *offsets = _mm512_mullo_epi32(_mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                 _mm512_set1_epi32(first)),
                                _mm512_set1_epi32(static_cast<int32_t>(ld)));
  return true;
}
#endif

// A = src^T for src [k, m] (row stride ld): dst [m][lda], dst[c][r] = src[r][c], zero in [k, padded_k(k)).
inline void pack_a_cols(const uint16_t* src, int64_t ld, int k, int m, Operand* dst, int64_t lda) {
  const int kp = static_cast<int>(padded_k(k));
  for (int c = 0; c < m; ++c) std::fill(dst + c * lda + k, dst + c * lda + kp, Operand(0));
  int r0 = 0;
#if APT_SIMD_LEVEL >= 2
  __m512i lo, hi;  // 32 rows at a time: a column's values are the low halves of two gathers of 32-bit words
  if (m >= 2 && row_offsets(ld, 0, &lo) && row_offsets(ld, 16, &hi)) {
    for (; r0 + 32 <= k; r0 += 32) {
      const uint16_t* rows = src + r0 * ld;
      for (int c = 0; c < m; ++c) {
        const bool last = c == m - 1;  // the word from the column before, high half: none past the row's end
        const uint16_t* at = rows + (last ? c - 1 : c);
        __m512i a = _mm512_i32gather_epi32(lo, at, 2), b = _mm512_i32gather_epi32(hi, at, 2);
        if (last) a = _mm512_srli_epi32(a, 16), b = _mm512_srli_epi32(b, 16);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c * lda + r0), _mm512_cvtepi32_epi16(a));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c * lda + r0 + 16), _mm512_cvtepi32_epi16(b));
      }
    }
  }
#endif
  for (int r = r0; r < k; ++r)
    for (int c = 0; c < m; ++c) dst[c * lda + r] = as_operand(src[r * ld + c]);
}

#if APT_SIMD_LEVEL >= 2
// 16 values of a row as bf16 in the low half of a 512-bit register (n < 16: zero past n).
inline __m512i bf16_half(const float* row, int n) {
  return _mm512_castsi256_si512((__m256i)_mm512_cvtneps_pbh(load_n(row, n).v));
}
inline __m512i bf16_half(const uint16_t* row, int n) {
  return _mm512_castsi256_si512(_mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << n) - 1u), row));
}

// out[2 j + e] = row e (0, 1; row 1 may be null: zeros) at column j, for j < n <= 16, as bf16.
template <class S>
inline void interleave_pair(const S* r0, const S* r1, int n, uint16_t* out) {
  const __m512i lo = bf16_half(r0, n), hi = r1 ? bf16_half(r1, n) : _mm512_setzero_si512();
  const __m512i pairs = _mm512_permutex2var_epi16(
      lo, _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37, 5, 36, 4,
                           35, 3, 34, 2, 33, 1, 32, 0),
      hi);
  _mm512_mask_storeu_epi16(out, static_cast<__mmask32>(n == 16 ? ~0u : (1u << (2 * n)) - 1u), pairs);
}
#endif

// B = src [k, n] (row stride ld) into dst with ldb >= padded_mn(n) (zero past k and n).
template <class S>
inline void pack_b_rows(const S* src, int64_t ld, int k, int n, Operand* dst, int64_t ldb) {
  const int kp = static_cast<int>(padded_k(k)), np = static_cast<int>(padded_mn(n));
#if APT_SIMD_LEVEL >= 2
  for (int p = 0; p < kp; p += 2) {
    Operand* out = dst + p * ldb;
    int j = 0;
    if (p < k) {
      const S* r0 = src + p * ld;
      const S* r1 = p + 1 < k ? r0 + ld : nullptr;
      for (; j < n; j += 16) interleave_pair(r0 + j, r1 ? r1 + j : nullptr, std::min(16, n - j), out + 2 * j);
      j = n;
    }
    std::fill(out + 2 * j, out + 2 * np, Operand(0));
  }
#else
  (void)kp;
  for (int p = 0; p < k; ++p) {
    to_operands(src + p * ld, n, dst + p * ldb);
    std::fill(dst + p * ldb + n, dst + p * ldb + np, Operand(0));
  }
#endif
}

// B = src^T for src [n, k] (row stride ld) into dst with ldb >= padded_mn(n) (zero past k and n). In VNNI-2
// this is a transpose of 32-bit pairs.
inline void pack_b_cols(const uint16_t* src, int64_t ld, int n, int k, Operand* dst, int64_t ldb) {
  const int kp = static_cast<int>(padded_k(k)), np = static_cast<int>(padded_mn(n));
#if APT_SIMD_LEVEL >= 2
  const int whole = k / 2;
  __m512i rows;  // 16 columns of B at a time: one gather of the rows' 32-bit pairs
  const bool gather = row_offsets(ld, 0, &rows);
  for (int w = 0; w < kp / 2; ++w) {
    Operand* out = dst + 2 * w * ldb;
    int j = 0;
    if (w < whole) {
      if (gather)
        for (; j + 16 <= n; j += 16) _mm512_storeu_si512(out + 2 * j, _mm512_i32gather_epi32(rows, src + j * ld + 2 * w, 2));
      for (; j < n; ++j) std::memcpy(out + 2 * j, src + j * ld + 2 * w, 4);
    } else if (2 * w < k) {
      for (; j < n; ++j) out[2 * j] = src[j * ld + 2 * w], out[2 * j + 1] = 0;
    }
    std::fill(out + 2 * j, out + 2 * np, Operand(0));
  }
#else
  (void)kp;
  for (int p = 0; p < k; ++p) {
    for (int j = 0; j < n; ++j) dst[p * ldb + j] = as_operand(src[j * ld + p]);
    std::fill(dst + p * ldb + n, dst + p * ldb + np, Operand(0));
  }
#endif
}

#if APT_SIMD_LEVEL >= 2
// C[R, NV x 16] (+)= A[R, 2 pairs] . B with vdpbf16ps; ldb in pairs' columns (a pair row is 2 ldb values).
template <int R, int NV>
inline void dot_micro(int pairs, const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb, float* c,
                      int64_t ldc, bool accumulate) {
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = accumulate ? _mm512_loadu_ps(c + r * ldc + 16 * v) : _mm512_setzero_ps();
  for (int p = 0; p < pairs; ++p) {
    __m512bh bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + p * 2 * ldb + 32 * v);
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + r * lda + 2 * p, sizeof(pair));
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + r * ldc + 16 * v, acc[r][v]);
}

template <int NV>
inline void dot_rows(int m, int pairs, const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb, float* c,
                     int64_t ldc, bool accumulate) {
  int i = 0;
  for (; i + 4 <= m; i += 4) dot_micro<4, NV>(pairs, a + i * lda, lda, b, ldb, c + i * ldc, ldc, accumulate);
  switch (m - i) {
    case 3: dot_micro<3, NV>(pairs, a + i * lda, lda, b, ldb, c + i * ldc, ldc, accumulate); break;
    case 2: dot_micro<2, NV>(pairs, a + i * lda, lda, b, ldb, c + i * ldc, ldc, accumulate); break;
    case 1: dot_micro<1, NV>(pairs, a + i * lda, lda, b, ldb, c + i * ldc, ldc, accumulate); break;
    default: break;
  }
}
#endif

// The product of the tier in use: AMX tiles (configured for this thread while the object lives), vdpbf16ps, or
// the fp32 micro-kernel. One per thread.
class Bf16Gemm {
 public:
  Bf16Gemm() {
#if APT_SIMD_LEVEL == 2
    amx_ = active_simd_level() == SimdLevel::Amx;
    if (amx_) simd_amx::bf16_tiles_begin();
#endif
  }
  ~Bf16Gemm() {
#if APT_SIMD_LEVEL == 2
    if (amx_) simd_amx::bf16_tiles_end();
#endif
  }
  Bf16Gemm(const Bf16Gemm&) = delete;
  Bf16Gemm& operator=(const Bf16Gemm&) = delete;

  // C[m, n] (+)= A[m, k] . B[k, n] in the layouts above.
  void operator()(int m, int n, int k, const Operand* a, int64_t lda, const Operand* b, int64_t ldb, float* c,
                  int64_t ldc, bool accumulate) const {
#if APT_SIMD_LEVEL >= 2
    const int np = static_cast<int>(padded_mn(n)), kp = static_cast<int>(padded_k(k));
#if APT_SIMD_LEVEL == 2
    if (amx_) return simd_amx::bf16_tile_gemm(m, np, kp, a, lda, b, ldb, c, ldc, accumulate);
#endif
    int j = 0;
    for (; j + 64 <= np; j += 64) dot_rows<4>(m, kp / 2, a, lda, b + 2 * j, ldb, c + j, ldc, accumulate);
    switch ((np - j) / 16) {
      case 3: dot_rows<3>(m, kp / 2, a, lda, b + 2 * j, ldb, c + j, ldc, accumulate); break;
      case 2: dot_rows<2>(m, kp / 2, a, lda, b + 2 * j, ldb, c + j, ldc, accumulate); break;
      case 1: dot_rows<1>(m, kp / 2, a, lda, b + 2 * j, ldb, c + j, ldc, accumulate); break;
      default: break;
    }
#else
    gemm(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
#endif
  }

 private:
  bool amx_ = false;
};

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
