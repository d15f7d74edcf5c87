// Tile primitives of the flash-style attention kernels, written once against Vec (include after
// simd/vec.h): a register-blocked GEMM micro-kernel, tile transposes, row max/exp helpers, and the
// counter-based dropout mask. Every tile is row-major with an explicit leading dimension.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace apt_fast {
namespace APT_SIMD_NS {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Register block of the micro-kernel: kGemmRows rows x kGemmVecs vectors of C stay in registers
// (16 accumulators; AVX-512 has 32 registers, AVX2 16).
constexpr int kGemmRows = 4;
constexpr int kGemmVecs = Vec::size >= 16 ? 4 : 2;

inline Vec load_n(const float* p, int n, float fill = 0.0f) {
  return n == Vec::size ? Vec::load(p) : Vec::load_partial(p, n, fill);
}

inline Vec load_n(const uint16_t* bf16, int n, float fill = 0.0f) {
  return n == Vec::size ? Vec::load(bf16) : Vec::load_partial(bf16, n, fill);
}

inline void store_n(float* p, int n, Vec v) {
  if (n == Vec::size) v.store(p); else v.store_partial(p, n);
}

// Loads the v-th of NV vectors of a row: the last one holds `tail` valid lanes when kPartial.
template <int NV, bool kPartial>
inline Vec load_lane_block(const float* p, int v, int tail) {
  return kPartial && v == NV - 1 ? Vec::load_partial(p, tail, 0.0f) : Vec::load(p);
}

template <int NV, bool kPartial>
inline void store_lane_block(float* p, int v, int tail, Vec x) {
  if (kPartial && v == NV - 1) x.store_partial(p, tail); else x.store(p);
}

// C[R, NV vectors] (+)= A[R, k] . B[k, NV vectors]; A[r, p] = a[r * a_rs + p * a_cs] (so a transposed A
// costs nothing); with kPartial the last vector has `tail` valid lanes. kPartial is a template argument
// so that the k loop has no branch: with one, the compiler keeps the accumulators in memory.
template <int R, int NV, bool kPartial>
inline void gemm_micro(int k, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t ldb, float* c,
                       int64_t ldc, int tail, bool accumulate) {
  Vec acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v)
      acc[r][v] = accumulate ? load_lane_block<NV, kPartial>(c + r * ldc + v * Vec::size, v, tail) : Vec(0.0f);
  for (int p = 0; p < k; ++p) {
    Vec bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load_lane_block<NV, kPartial>(b + p * ldb + v * Vec::size, v, tail);
    for (int r = 0; r < R; ++r) {
      const Vec av(a[r * a_rs + p * a_cs]);
      for (int v = 0; v < NV; ++v) acc[r][v] = Vec::fmadd(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) store_lane_block<NV, kPartial>(c + r * ldc + v * Vec::size, v, tail, acc[r][v]);
}

template <int NV, bool kPartial>
inline void gemm_rows(int m, int k, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t ldb, float* c,
                      int64_t ldc, int tail, bool accumulate) {
  int i = 0;
  for (; i + kGemmRows <= m; i += kGemmRows)
    gemm_micro<kGemmRows, NV, kPartial>(k, a + i * a_rs, a_rs, a_cs, b, ldb, c + i * ldc, ldc, tail, accumulate);
  const float* ar = a + i * a_rs;
  float* cr = c + i * ldc;
  switch (m - i) {
    case 3: gemm_micro<3, NV, kPartial>(k, ar, a_rs, a_cs, b, ldb, cr, ldc, tail, accumulate); break;
    case 2: gemm_micro<2, NV, kPartial>(k, ar, a_rs, a_cs, b, ldb, cr, ldc, tail, accumulate); break;
    case 1: gemm_micro<1, NV, kPartial>(k, ar, a_rs, a_cs, b, ldb, cr, ldc, tail, accumulate); break;
    default: break;
  }
}

// C[m, n] = A[m, k] . B[k, n] (or += when accumulate), A[r, p] = a[r * a_rs + p * a_cs]; B and C
// row-major with unit stride along rows.
inline void gemm_strided(int m, int n, int k, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t ldb,
                         float* c, int64_t ldc, bool accumulate) {
  constexpr int chunk = kGemmVecs * Vec::size;
  int j = 0;
  for (; j + chunk <= n; j += chunk)
    gemm_rows<kGemmVecs, false>(m, k, a, a_rs, a_cs, b + j, ldb, c + j, ldc, Vec::size, accumulate);
  for (; j + Vec::size <= n; j += Vec::size)
    gemm_rows<1, false>(m, k, a, a_rs, a_cs, b + j, ldb, c + j, ldc, Vec::size, accumulate);
  if (j < n) gemm_rows<1, true>(m, k, a, a_rs, a_cs, b + j, ldb, c + j, ldc, n - j, accumulate);
}

// C = A . B with A row-major [m, k] (leading dim lda).
inline void gemm(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                 bool accumulate) {
  gemm_strided(m, n, k, a, lda, 1, b, ldb, c, ldc, accumulate);
}

// C = A^T . B with A row-major [k, m] (leading dim lda).
inline void gemm_at(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                    int64_t ldc, bool accumulate) {
  gemm_strided(m, n, k, a, 1, lda, b, ldb, c, ldc, accumulate);
}

// dst[c, r] = src[r, c] for an r x c tile.
inline void transpose(int rows, int cols, const float* src, int64_t lds, float* dst, int64_t ldd) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

// dst[r, :] = scale * src[r, :] for an r x c tile.
inline void scale_copy(int rows, int cols, const float* src, int64_t lds, float scale, float* dst, int64_t ldd) {
  const Vec s(scale);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; c += Vec::size) {
      const int n = std::min(Vec::size, cols - c);
      store_n(dst + r * ldd + c, n, load_n(src + r * lds + c, n) * s);
    }
}

inline Vec clamp(Vec x, float lo, float hi) { return Vec::min(Vec::max(x, Vec(lo)), Vec(hi)); }

// g where lo <= x <= hi (torch's clamp passes the gradient at both bounds), 0 elsewhere and at NaN.
inline Vec pass_within(Vec g, Vec x, float lo, float hi) {
  g = Vec::select(x < Vec(lo), Vec(0.0f), g);
  g = Vec::select(x > Vec(hi), Vec(0.0f), g);
  return Vec::select(x == x, g, Vec(0.0f));
}

inline float row_max(const float* x, int n) {
  Vec m(kNegInf);
  for (int c = 0; c < n; c += Vec::size) m = Vec::max(m, load_n(x + c, std::min(Vec::size, n - c), kNegInf));
  return m.reduce_max();
}

// x[c] = exp(x[c] - shift) in place; returns the sum. shift must be finite.
inline float exp_shifted(float* x, int n, float shift) {
  const Vec s(shift);
  Vec sum(0.0f);
  for (int c = 0; c < n; c += Vec::size) {
    const int w = std::min(Vec::size, n - c);
    Vec e = exp(load_n(x + c, w, kNegInf) - s);
    store_n(x + c, w, e);
    sum = sum + e;
  }
  return sum.reduce_add();
}

// Dropout keep factors from a counter-based hash (splitmix64) of (seed, element index): the same
// element always gets the same draw, so the backward regenerates the forward's mask.
struct DropoutMask {
  float p = 0.0f;       // drop probability
  uint64_t seed = 0;
  float keep_scale = 1.0f;  // 1 / (1 - p)

  bool active() const { return p > 0.0f; }
  float factor(uint64_t index) const {
    uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1) on a 2^-24 grid
    return u >= p ? keep_scale : 0.0f;
  }
  // row[c] *= factor(first + c) for c < n.
  void apply(float* row, int n, uint64_t first) const {
    for (int c = 0; c < n; ++c) row[c] *= factor(first + static_cast<uint64_t>(c));
  }
};

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
