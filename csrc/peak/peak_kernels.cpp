// The vector kinds' loops: 12 independent accumulators per instruction kind, enough to cover the latency.
#include "common/simd/vec.h"  // names this tier's namespace (APT_SIMD_NS)
#include "peak/peak.h"

#if APT_SIMD_LEVEL == 2
#include <immintrin.h>
#endif

namespace apt_fast {
namespace APT_SIMD_NS {

double peak_vector_loop(PeakKind kind, int64_t iterations) {
#if APT_SIMD_LEVEL == 2
  constexpr int kChains = 12;
  if (kind == PeakKind::Fp32Fma) {
    __m512 acc[kChains];
    const __m512 a = _mm512_set1_ps(1.0001f), b = _mm512_set1_ps(0.9999f);
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c));
    for (int64_t i = 0; i < iterations; ++i)
      for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    float sink = 0.0f;
    for (int c = 0; c < kChains; ++c) sink += _mm512_reduce_add_ps(acc[c]);
    return iterations * kChains * 16.0 * 2.0 + (sink == 12345.678f ? 1 : 0);
  }
  if (kind == PeakKind::Bf16Dot) {
    __m512 acc[kChains];
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3f80);
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t i = 0; i < iterations; ++i)
      for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
    float sink = 0.0f;
    for (int c = 0; c < kChains; ++c) sink += _mm512_reduce_add_ps(acc[c]);
    return iterations * kChains * 32.0 * 2.0 + (sink == 12345.678f ? 1 : 0);
  }
  if (kind == PeakKind::Int8Dot) {
    __m512i acc[kChains];
    const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(1);
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_setzero_si512();
    for (int64_t i = 0; i < iterations; ++i)
      for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
    int sink = 0;
    for (int c = 0; c < kChains; ++c) sink += _mm512_reduce_add_epi32(acc[c]);
    return iterations * kChains * 64.0 * 2.0 + (sink == 12345 ? 1 : 0);
  }
#endif
  (void)iterations;
  APT_CHECK(false, "peak kind " << static_cast<int>(kind) << " needs the avx512 tier");
  return 0.0;
}

// Sums count int64 values with four independent accumulators (the loads are the work).
int64_t read_sum(const int64_t* data, int64_t count) {
  int64_t acc[8] = {};
  for (int64_t i = 0; i + 8 <= count; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += data[i + j];
  int64_t total = 0;
  for (int j = 0; j < 8; ++j) total += acc[j];
  return total;
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
