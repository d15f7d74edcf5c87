// float32 -> F16 / BF16 tensor conversion, compiled once per SIMD level, byte-identical to gguf-py:
//   F16:  IEEE round to nearest even (F16C's vcvtps2ph at the AVX levels, numpy's rule in scalar code)
//   BF16: bits + 0x7fff + (bit 16 of bits), top half; a NaN keeps its top half with the quiet bit 0x40
// The BF16 rule runs on integer lanes at every level: AVX-512's vcvtneps2bf16 flushes subnormal inputs
// to zero, which gguf-py does not.
#include <algorithm>
#include <cstring>

#include "gguf/gguf_quant.h"
#include "common/simd/vec.h"
#include "common/parallel_for.h"

#if APT_SIMD_LEVEL >= 1
#include <immintrin.h>
#endif

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

// Converts Vec::size floats: x [Vec::size] -> out [Vec::size].
#if APT_SIMD_LEVEL == 2

inline void to_f16(const float* x, uint16_t* out) {
  const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), h);
}

inline void to_bf16(const float* x, uint16_t* out) {
  const __m512i bits = _mm512_loadu_si512(x);
  const __m512i high = _mm512_srli_epi32(bits, 16);
  const __m512i bias = _mm512_add_epi32(_mm512_and_si512(high, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7fff));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  const __m512i halves = _mm512_mask_or_epi32(rounded, nan, high, _mm512_set1_epi32(0x40));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_cvtepi32_epi16(halves));
}

#elif APT_SIMD_LEVEL == 1

inline void to_f16(const float* x, uint16_t* out) {
  const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), h);
}

inline void to_bf16(const float* x, uint16_t* out) { Vec::load(x).store(out); }  // the same rule (vec_avx2.h)

#else

inline void to_f16(const float* x, uint16_t* out) {
  for (int i = 0; i < Vec::size; ++i) out[i] = fp32_to_fp16_bits_inline(x[i]);
}

inline void to_bf16(const float* x, uint16_t* out) { Vec::load(x).store(out); }  // the same rule (vec_scalar.h)

#endif

// x [n] -> out [n], whole vectors, then the tail through a padded copy.
template <void (*Convert)(const float*, uint16_t*)>
void convert_range(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + Vec::size <= n; i += Vec::size) Convert(x + i, out + i);
  if (i < n) {
    const int rest = static_cast<int>(n - i);
    float padded[Vec::size] = {};
    uint16_t converted[Vec::size];
    std::memcpy(padded, x + i, rest * sizeof(float));
    Convert(padded, converted);
    std::memcpy(out + i, converted, rest * sizeof(uint16_t));
  }
}

constexpr int64_t kChunk = 1 << 16;  // elements per work item: 256 KiB read, 128 KiB written

}  // namespace

void gguf_convert_float(const float* src, int64_t n, GgufFloatType type, uint16_t* dst, int num_threads) {
  const auto convert = type == GgufFloatType::F16 ? convert_range<to_f16> : convert_range<to_bf16>;
  parallel_for_chunks(n, kChunk, num_threads,
                      [&](int64_t begin, int64_t end) { convert(src + begin, end - begin, dst + begin); });
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
