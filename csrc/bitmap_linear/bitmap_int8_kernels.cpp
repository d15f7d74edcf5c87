// Bitmap sparse linear with int8 values on the vector tiers (compiled once per tier; bitmap_linear.h): x quantized
// per row to int8 (quantized_rows.h), exact int32 sums, the fp32 epilogue of int8_linear.
//
// AVX-512: a word of 64 bitmap bits expands the next packed int8 values into a 64-byte vector (VBMI2 vpexpandb),
// multiplied with the block's activation rows by VNNI vpdpbusd (activations + 128 as u8; the 128 * sum(w) this
// adds is taken off with the weights' own sum, from one more vpdpbusd against bytes of 1). Other tiers, and rows
// kept at under 1/16 density: the kept entries one by one. Every tier gives the same int32 sums.
#include <algorithm>
#include <vector>

#include "bitmap_linear/bitmap_rows.h"
#include "quantized_linear/quantized_rows.h"

#if APT_SIMD_LEVEL == 2
#include <immintrin.h>
#endif

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

constexpr int kRowBlock = 4;
constexpr int64_t kSparseRow = 16;  // rows with fewer than K / kSparseRow kept entries: entry by entry
// The streams of packed values and bitmap words are read this far ahead (prefetches that run across the 4 KiB
// pages the hardware prefetchers stop at).
constexpr int64_t kPrefetchBytes = 2048;
constexpr int64_t kWordsPerLine = 8;
constexpr int64_t kPrefetchWords = 2 * kBitmapWord;

#if APT_SIMD_LEVEL == 2
constexpr int kOffset = 128;  // u8 activations for VPDPBUSD
#else
constexpr int kOffset = 0;
#endif

// sum over the kept entries of row n of (activation byte - kOffset) * value, for the MR activation rows at qa.
template <int MR>
void sparse_row_sums(const BitmapWeight& w, const uint8_t* qa, int64_t n, int32_t* sums) {
  const int64_t words = w.words(), kp = w.kp();
  const int8_t* v = static_cast<const int8_t*>(w.values) + w.row_offsets[n];
  for (int i = 0; i < MR; ++i) sums[i] = 0;
  for (int64_t wd = 0; wd < words; ++wd)
    for (uint64_t b = w.bitmap[n * words + wd]; b != 0; b &= b - 1) {
      const int64_t k = wd * kBitmapWord + __builtin_ctzll(b);
      const int32_t q = *v++;
      for (int i = 0; i < MR; ++i) sums[i] += int32_t{static_cast<int8_t>(qa[i * kp + k] - kOffset)} * q;
    }
}

#if APT_SIMD_LEVEL == 2
template <int MR>
void row_sums(const BitmapWeight& w, const uint8_t* qa, int64_t n, int32_t* sums) {
  if ((w.row_offsets[n + 1] - w.row_offsets[n]) * kSparseRow < w.k) return sparse_row_sums<MR>(w, qa, n, sums);
  const int64_t words = w.words(), kp = w.kp();
  const uint64_t* bits = w.bitmap + n * words;
  const int8_t* v = static_cast<const int8_t*>(w.values) + w.row_offsets[n];
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc[MR], weight_sum = _mm512_setzero_si512();
  for (__m512i& a : acc) a = _mm512_setzero_si512();
  for (int64_t wd = 0; wd < words; ++wd) {
    if (wd % kWordsPerLine == 0) __builtin_prefetch(bits + wd + kPrefetchWords);
    __builtin_prefetch(v + kPrefetchBytes);
    const uint64_t b = bits[wd];
    if (b == 0) continue;
    const __m512i wv = _mm512_maskz_expandloadu_epi8(b, v);
    v += __builtin_popcountll(b);
    for (int i = 0; i < MR; ++i)
      acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_loadu_si512(qa + i * kp + wd * kBitmapWord), wv);
    weight_sum = _mm512_dpbusd_epi32(weight_sum, ones, wv);
  }
  const int32_t compensation = kOffset * _mm512_reduce_add_epi32(weight_sum);
  for (int i = 0; i < MR; ++i) sums[i] = _mm512_reduce_add_epi32(acc[i]) - compensation;
}
#else
template <int MR>
void row_sums(const BitmapWeight& w, const uint8_t* qa, int64_t n, int32_t* sums) {
  sparse_row_sums<MR>(w, qa, n, sums);
}
#endif

template <int MR>
void int8_rows(const BitmapWeight& w, const uint8_t* qa, int64_t n0, int64_t n1, int32_t* sums) {
  for (int64_t n = n0; n < n1; ++n) {
    int32_t row[MR];
    row_sums<MR>(w, qa, n, row);
    for (int i = 0; i < MR; ++i) sums[i * kRowsPerTask + (n - n0)] = row[i];
  }
}

void int8_block(const BitmapWeight& w, const uint8_t* qa, int rows, int64_t n0, int64_t n1, int32_t* sums) {
  switch (rows) {
    case 1: return int8_rows<1>(w, qa, n0, n1, sums);
    case 2: return int8_rows<2>(w, qa, n0, n1, sums);
    case 3: return int8_rows<3>(w, qa, n0, n1, sums);
    default: return int8_rows<4>(w, qa, n0, n1, sums);
  }
}

}  // namespace

void bitmap_int8_linear_kernel(const BitmapLinearArgs& a) {
  const BitmapWeight& w = a.w;
  const int64_t kp = w.kp();
  std::vector<uint8_t> qa(static_cast<size_t>(a.m * kp));  // [M][kp] activations + kOffset
  std::vector<float> a_scale(static_cast<size_t>(a.m));
  parallel_for(a.m, a.num_threads, [&](int64_t m0, int64_t m1) {
    quantize_rows(a.x, a.x_stride, a.x_dtype, 8, m0, m1, w.k, kp, w.k, kOffset, qa.data(), a_scale.data());
  });
  const size_t element = a.x_dtype == Dtype::Float32 ? 4 : 2;
  for_row_tasks(w.n, a.num_threads, [&](int64_t n0, int64_t n1) {
    alignas(64) int32_t sums[kRowBlock * kRowsPerTask];
    alignas(64) float total[kRowsPerTask];
    for (int64_t m0 = 0; m0 < a.m; m0 += kRowBlock) {
      const int rows = static_cast<int>(std::min<int64_t>(kRowBlock, a.m - m0));
      int8_block(w, qa.data() + m0 * kp, rows, n0, n1, sums);
      for (int i = 0; i < rows; ++i) {
        for (int64_t j = 0; j < n1 - n0; ++j)
          total[j] = (static_cast<float>(sums[i * kRowsPerTask + j]) * w.scales[n0 + j]) * a_scale[m0 + i];
        add_bias_row(total, n1 - n0, a.bias, n0);
        store_row(total, n1 - n0, static_cast<char*>(a.y) + ((m0 + i) * a.y_stride + n0) * element, a.x_dtype);
      }
    }
  });
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
