// Bitmap sparse linear with fp32 or bf16 values on the vector tiers (compiled once per tier; bitmap_linear.h).
//
// Few rows: tasks of kRowsPerTask weight rows; per block of up to kRowBlock rows of x, each weight row is walked
// a vector of columns at a time: its bitmap bits expand the next packed values into the vector (Vec::expand), which
// is multiplied with the block's x rows. Rows kept at under 1/16 density skip the expansion and visit their kept
// entries one by one. Many rows: x is transposed in tiles of kTileVectors vectors of rows, and each kept weight is
// broadcast against a tile row, so the work follows the kept weights.
#include <algorithm>
#include <vector>

#include "bitmap_linear/bitmap_rows.h"
#include "common/parallel_for.h"
#include "common/simd/vec.h"
#include "quantized_linear/quantized_rows.h"

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

constexpr int kRowBlock = 4;            // x rows multiplied with one expanded weight vector
constexpr int kTileVectors = 4;         // many rows: x rows per tile, in vectors
constexpr int64_t kTileRows = kTileVectors * Vec::size;
constexpr unsigned kLaneBits = static_cast<unsigned>((uint64_t{1} << Vec::size) - 1);
constexpr int64_t kSparseRow = 16;      // a row with fewer than K / kSparseRow kept entries is visited entry by entry

// The streams of packed values and bitmap words are read this far ahead (prefetches that run across the 4 KiB
// pages the hardware prefetchers stop at).
constexpr int64_t kPrefetchBytes = 2048;
constexpr int64_t kWordsPerLine = 8;
constexpr int64_t kPrefetchWords = 2 * kBitmapWord;  // two rows of 4096 inputs ahead

// out[i * kRowsPerTask + (n - n0)] = x row i . W row n, for the MR rows of x at xr ([MR][kp]) and rows [n0, n1).
template <class V, int MR>
void expanded_rows(const BitmapWeight& w, const float* xr, int64_t n0, int64_t n1, float* out) {
  const int64_t words = w.words(), kp = w.kp();
  const V* values = static_cast<const V*>(w.values);
  for (int64_t n = n0; n < n1; ++n) {
    const uint64_t* bits = w.bitmap + n * words;
    const V* v = values + w.row_offsets[n];
    if ((w.row_offsets[n + 1] - w.row_offsets[n]) * kSparseRow < w.k) {
      float sums[MR] = {};
      for (int64_t wd = 0; wd < words; ++wd)
        for (uint64_t b = bits[wd]; b != 0; b &= b - 1) {
          const int64_t k = wd * kBitmapWord + __builtin_ctzll(b);
          const float weight = value_of(*v++);
          for (int i = 0; i < MR; ++i) sums[i] += weight * xr[i * kp + k];
        }
      for (int i = 0; i < MR; ++i) out[i * kRowsPerTask + (n - n0)] = sums[i];
      continue;
    }
    // kChains accumulators per x row, so that consecutive multiply-adds into a row do not wait on each other
    constexpr int kChains = MR >= 4 ? 1 : 4 / MR;
    Vec acc[MR][kChains];
    for (auto& row : acc)
      for (Vec& a : row) a = Vec(0.0f);
    for (int64_t wd = 0; wd < words; ++wd) {
      if (wd % kWordsPerLine == 0) __builtin_prefetch(bits + wd + kPrefetchWords);
      const uint64_t b = bits[wd];
      if (b == 0) continue;
      const float* xw = xr + wd * kBitmapWord;
      for (int p = 0; p < kBitmapWord; p += Vec::size) {
        __builtin_prefetch(reinterpret_cast<const char*>(v) + kPrefetchBytes);
        const unsigned lanes = static_cast<unsigned>(b >> p) & kLaneBits;
        const Vec wv = Vec::expand(v, lanes);
        v += __builtin_popcount(lanes);
        Vec* chain = &acc[0][(p / Vec::size) % kChains];
        for (int i = 0; i < MR; ++i) chain[i * kChains] = Vec::fmadd(wv, Vec::load(xw + i * kp + p), chain[i * kChains]);
      }
    }
    for (int i = 0; i < MR; ++i) {
      for (int c = 1; c < kChains; ++c) acc[i][0] = acc[i][0] + acc[i][c];
      out[i * kRowsPerTask + (n - n0)] = acc[i][0].reduce_add();
    }
  }
}

template <class V>
void expanded_block(const BitmapWeight& w, const float* xr, int rows, int64_t n0, int64_t n1, float* out) {
  switch (rows) {
    case 1: return expanded_rows<V, 1>(w, xr, n0, n1, out);
    case 2: return expanded_rows<V, 2>(w, xr, n0, n1, out);
    case 3: return expanded_rows<V, 3>(w, xr, n0, n1, out);
    default: return expanded_rows<V, 4>(w, xr, n0, n1, out);
  }
}

// out[(n - n0) * kTileRows + j] = x row j of the tile . W row n, for rows [n0, n1); tile = xT [kp][kTileRows].
template <class V>
void broadcast_rows(const BitmapWeight& w, const float* tile, int64_t n0, int64_t n1, float* out) {
  const int64_t words = w.words();
  const V* values = static_cast<const V*>(w.values);
  for (int64_t n = n0; n < n1; ++n) {
    const uint64_t* bits = w.bitmap + n * words;
    const V* v = values + w.row_offsets[n];
    // Each word's products are summed apart, in two sets of accumulators taking the kept entries in turn (twice
    // the independent multiply-adds in flight), then added to the row's total: sums of at most 32 terms, then of
    // K / 64, instead of one sum of up to K terms per output.
    Vec total[kTileVectors];
    for (Vec& t : total) t = Vec(0.0f);
    for (int64_t wd = 0; wd < words; ++wd) {
      uint64_t b = bits[wd];
      if (b == 0) continue;
      Vec acc[2][kTileVectors];
      for (auto& set : acc)
        for (Vec& a : set) a = Vec(0.0f);
      for (int parity = 0; b != 0; b &= b - 1, parity ^= 1) {
        const float* xk = tile + (wd * kBitmapWord + __builtin_ctzll(b)) * kTileRows;
        const Vec weight(value_of(*v++));
        Vec* set = acc[parity];
        for (int r = 0; r < kTileVectors; ++r) set[r] = Vec::fmadd(weight, Vec::load(xk + r * Vec::size), set[r]);
      }
      for (int r = 0; r < kTileVectors; ++r) total[r] = total[r] + (acc[0][r] + acc[1][r]);
    }
    for (int r = 0; r < kTileVectors; ++r) total[r].store(out + (n - n0) * kTileRows + r * Vec::size);
  }
}

// y row m, columns [n0, n0 + count) = total + bias, in the output dtype.
void store_output(const BitmapLinearArgs& a, int64_t m, int64_t n0, int64_t count, float* total) {
  const size_t element = a.x_dtype == Dtype::Float32 ? 4 : 2;
  add_bias_row(total, count, a.bias, n0);
  store_row(total, count, static_cast<char*>(a.y) + (m * a.y_stride + n0) * element, a.x_dtype);
}

template <class V>
void few_rows(const BitmapLinearArgs& a, const float* xr) {
  const BitmapWeight& w = a.w;
  for_row_tasks(w.n, a.num_threads, [&](int64_t n0, int64_t n1) {
    alignas(64) float out[kRowBlock * kRowsPerTask];
    for (int64_t m0 = 0; m0 < a.m; m0 += kRowBlock) {
      const int rows = static_cast<int>(std::min<int64_t>(kRowBlock, a.m - m0));
      expanded_block<V>(w, xr + m0 * w.kp(), rows, n0, n1, out);
      for (int i = 0; i < rows; ++i) store_output(a, m0 + i, n0, n1 - n0, out + i * kRowsPerTask);
    }
  });
}

template <class V>
void many_rows(const BitmapLinearArgs& a, const float* xr) {
  const BitmapWeight& w = a.w;
  const int64_t kp = w.kp(), tiles = (a.m + kTileRows - 1) / kTileRows;
  std::vector<float> xt(static_cast<size_t>(tiles * kp * kTileRows));  // [tiles][kp][kTileRows]
  parallel_for(tiles, a.num_threads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      transpose_rows(xr + t * kTileRows * kp, std::min(kTileRows, a.m - t * kTileRows), kp, kTileRows,
                     xt.data() + t * kp * kTileRows);
  });
  for_row_tasks(w.n, a.num_threads, [&](int64_t n0, int64_t n1) {
    alignas(64) float out[kRowsPerTask * kTileRows];
    alignas(64) float row[kRowsPerTask];
    for (int64_t t = 0; t < tiles; ++t) {
      broadcast_rows<V>(w, xt.data() + t * kp * kTileRows, n0, n1, out);
      const int64_t rows = std::min(kTileRows, a.m - t * kTileRows);
      for (int64_t j = 0; j < rows; ++j) {
        for (int64_t i = 0; i < n1 - n0; ++i) row[i] = out[i * kTileRows + j];
        store_output(a, t * kTileRows + j, n0, n1 - n0, row);
      }
    }
  });
}

template <class V>
void float_linear(const BitmapLinearArgs& a, int64_t many) {
  const int64_t kp = a.w.kp();
  std::vector<float> xr(static_cast<size_t>(a.m * kp));  // [M][kp] fp32, as the layer multiplies x
  parallel_for(a.m, a.num_threads, [&](int64_t m0, int64_t m1) {
    fp32_rows(a.x, a.x_stride, a.x_dtype, m0, m1, a.w.k, kp, a.w.value_type == ValueType::BFloat16,
              xr.data() + m0 * kp);
  });
  if (a.m >= many) return many_rows<V>(a, xr.data());
  few_rows<V>(a, xr.data());
}

}  // namespace

void bitmap_float_linear_kernel(const BitmapLinearArgs& a, int64_t many_rows) {
  if (a.w.value_type == ValueType::BFloat16) return float_linear<uint16_t>(a, many_rows);
  float_linear<float>(a, many_rows);
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
