// Backward of the bitmap sparse linear on the vector tiers (compiled once per tier; bitmap_linear.h):
//   grad_x[m, k]    = sum_n grad_y[m, n] W[n, k]       (int8 values: W = q * scale[n])
//   grad_values[i]  = sum_m grad_y[m, n] x[m, k]       for the i-th kept entry (n, k) only (float values)
// both from one pass over the weight.
//
// Few rows: the weight rows are split between the threads, each adding into its own fp32 grad_x rows (summed at
// the end); a vector of columns at a time, the packed values are expanded under the bitmap bits (Vec::expand) and
// multiplied into grad_x, and the column products sum_m grad_y[m, n] x[m, :] are compressed to the kept lanes
// (Vec::compress) and stored as the next grad_values. Many rows: x, grad_y and grad_x are transposed into tiles of
// kTileVectors vectors of rows, the bitmap words are split between the threads (each owns its columns of grad_x and
// their kept entries) and every kept weight costs kTileVectors vector multiply-adds for each gradient.
#include <algorithm>
#include <vector>

#include "bitmap_linear/bitmap_rows.h"
#include "common/parallel_for.h"
#include "common/simd/vec.h"

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

constexpr int kTileVectors = 4;
constexpr int64_t kTileRows = kTileVectors * Vec::size;
constexpr unsigned kLaneBits = static_cast<unsigned>((uint64_t{1} << Vec::size) - 1);
constexpr int64_t kSparseRow = 16;  // rows with fewer than K / kSparseRow kept entries: entry by entry
constexpr int64_t kPrefetchRows = 4;  // many rows: weight rows whose values are fetched ahead

inline float weight_of(float v) { return v; }
inline float weight_of(uint16_t v) { return value_of(v); }
inline float weight_of(int8_t v) { return static_cast<float>(v); }

inline void store_value(float* out, float v) { *out = v; }
inline void store_value(uint16_t* out, float v) { Vec(v).store_partial(out, 1); }

// What one backward call works on, as fp32 rows.
struct Problem {
  const BitmapBackwardArgs& a;
  int64_t kp;
  const float* gy;  // [M][N] grad_y (int8 values: times scale[n])
  const float* xr;  // [M][kp] x as the forward multiplies it, or null (no grad_values)
};

// --- few rows -----------------------------------------------------------------------------------------------

// Weight row n: gx rows ([M][kp], this thread's) += grad_y[:, n] W[n, :]; grad_values of the row (dv, or null).
// g: scratch of M floats.
template <class V>
void few_rows_row(const Problem& p, int64_t n, float* gx, V* dv, float* g) {
  const BitmapWeight& w = p.a.w;
  const int64_t m = p.a.m, words = w.words(), kp = p.kp;
  const uint64_t* bits = w.bitmap + n * words;
  const V* v = static_cast<const V*>(w.values) + w.row_offsets[n];
  V* d = dv ? dv + w.row_offsets[n] : nullptr;
  for (int64_t i = 0; i < m; ++i) g[i] = p.gy[i * w.n + n];
  if ((w.row_offsets[n + 1] - w.row_offsets[n]) * kSparseRow < w.k || sizeof(V) == 1) {
    for (int64_t wd = 0; wd < words; ++wd)
      for (uint64_t b = bits[wd]; b != 0; b &= b - 1) {
        const int64_t k = wd * kBitmapWord + __builtin_ctzll(b);
        const float weight = weight_of(*v++);
        if (gx)
          for (int64_t i = 0; i < m; ++i) gx[i * kp + k] += g[i] * weight;
        if constexpr (sizeof(V) != 1) {
          if (d) {
            float sum = 0.0f;
            for (int64_t i = 0; i < m; ++i) sum += g[i] * p.xr[i * kp + k];
            store_value(d++, sum);
          }
        }
      }
    return;
  }
  if constexpr (sizeof(V) != 1) {
    for (int64_t wd = 0; wd < words; ++wd) {
      const uint64_t b = bits[wd];
      if (b == 0) continue;
      for (int q = 0; q < kBitmapWord; q += Vec::size) {
        const unsigned lanes = static_cast<unsigned>(b >> q) & kLaneBits;
        const int count = __builtin_popcount(lanes);
        const int64_t k = wd * kBitmapWord + q;
        if (gx) {
          const Vec wv = Vec::expand(v, lanes);
          for (int64_t i = 0; i < m; ++i) {
            float* row = gx + i * kp + k;
            Vec::fmadd(Vec(g[i]), wv, Vec::load(row)).store(row);
          }
        }
        if (d) {
          Vec sum(0.0f);
          for (int64_t i = 0; i < m; ++i) sum = Vec::fmadd(Vec(g[i]), Vec::load(p.xr + i * kp + k), sum);
          Vec::compress(sum, lanes).store_partial(d, count);
          d += count;
        }
        v += count;
      }
    }
  }
}

template <class V>
void few_rows(const Problem& p) {
  const BitmapBackwardArgs& a = p.a;
  const int64_t kp = p.kp, m = a.m;
  const int slices = std::max(1, std::min<int>(a.num_threads, static_cast<int>(a.w.n)));
  std::vector<float> gx(a.grad_x ? static_cast<size_t>(slices * m * kp) : 0, 0.0f);  // [slices][M][kp]
  V* dv = static_cast<V*>(a.grad_values);
  parallel_for(slices, slices, [&](int64_t s0, int64_t s1) {
    std::vector<float> g(static_cast<size_t>(m));
    for (int64_t s = s0; s < s1; ++s) {
      float* own = a.grad_x ? gx.data() + s * m * kp : nullptr;
      for (int64_t n = s * a.w.n / slices; n < (s + 1) * a.w.n / slices; ++n) few_rows_row<V>(p, n, own, dv, g.data());
    }
  });
  if (!a.grad_x) return;
  const size_t element = a.grad_y_dtype == Dtype::Float32 ? 4 : 2;
  parallel_for(m, a.num_threads, [&](int64_t m0, int64_t m1) {
    std::vector<float> row(static_cast<size_t>(kp));
    for (int64_t i = m0; i < m1; ++i) {
      std::copy(gx.data() + i * kp, gx.data() + (i + 1) * kp, row.data());
      for (int s = 1; s < slices; ++s) {
        const float* other = gx.data() + (s * m + i) * kp;
        for (int64_t k = 0; k < kp; k += Vec::size) (Vec::load(row.data() + k) + Vec::load(other + k)).store(row.data() + k);
      }
      char* out = static_cast<char*>(a.grad_x) + i * a.w.k * element;
      if (a.grad_y_dtype == Dtype::Float32) {
        std::copy(row.data(), row.data() + a.w.k, reinterpret_cast<float*>(out));
      } else {
        uint16_t* dst = reinterpret_cast<uint16_t*>(out);
        int64_t k = 0;
        for (; k + Vec::size <= a.w.k; k += Vec::size) Vec::load(row.data() + k).store(dst + k);
        if (k < a.w.k) Vec::load(row.data() + k).store_partial(dst + k, static_cast<int>(a.w.k - k));
      }
    }
  });
}

// --- many rows ----------------------------------------------------------------------------------------------

// Tiles of kTileRows rows, transposed: rows [M][cols] -> [tiles][cols][kTileRows], zero past M.
std::vector<float> transposed_tiles(const float* rows, int64_t m, int64_t cols, int num_threads) {
  const int64_t tiles = (m + kTileRows - 1) / kTileRows;
  std::vector<float> out(static_cast<size_t>(tiles * cols * kTileRows));
  parallel_for(tiles, num_threads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      transpose_rows(rows + t * kTileRows * cols, std::min(kTileRows, m - t * kTileRows), cols, kTileRows,
                     out.data() + t * cols * kTileRows);
  });
  return out;
}

struct Tiles {
  const float* gy;  // [tiles][N][kTileRows]
  const float* x;   // [tiles][kp][kTileRows] or null
  float* gx;        // [tiles][kp][kTileRows] or null
  float* dv;        // [nnz] fp32 sums or null
};

// Bitmap words [w0, w1) of every weight row, for x row tile t.
template <class V>
void many_rows_words(const Problem& p, const Tiles& tiles, int64_t t, int64_t w0, int64_t w1, int64_t* cursor) {
  const BitmapWeight& w = p.a.w;
  const int64_t words = w.words(), kp = p.kp;
  const V* values = static_cast<const V*>(w.values);
  const float* gy_tile = tiles.gy + t * w.n * kTileRows;
  const float* x_tile = tiles.x ? tiles.x + t * kp * kTileRows : nullptr;
  float* gx_tile = tiles.gx ? tiles.gx + t * kp * kTileRows : nullptr;
  for (int64_t wd = w0; wd < w1; ++wd) {
    for (int64_t n = 0; n < w.n; ++n) {
      if (n + kPrefetchRows < w.n) {
        __builtin_prefetch(values + cursor[n + kPrefetchRows]);
        if (tiles.dv) __builtin_prefetch(tiles.dv + cursor[n + kPrefetchRows], 1);
      }
      uint64_t b = w.bitmap[n * words + wd];
      if (b == 0) continue;
      Vec g[kTileVectors];
      for (int r = 0; r < kTileVectors; ++r) g[r] = Vec::load(gy_tile + n * kTileRows + r * Vec::size);
      int64_t i = cursor[n];
      cursor[n] += __builtin_popcountll(b);
      for (; b != 0; b &= b - 1, ++i) {
        const int64_t k = wd * kBitmapWord + __builtin_ctzll(b);
        if (gx_tile) {
          const Vec weight(weight_of(values[i]));
          float* gk = gx_tile + k * kTileRows;
          for (int r = 0; r < kTileVectors; ++r)
            Vec::fmadd(weight, g[r], Vec::load(gk + r * Vec::size)).store(gk + r * Vec::size);
        }
        if (x_tile) {
          const float* xk = x_tile + k * kTileRows;
          Vec sum[kTileVectors];
          for (int r = 0; r < kTileVectors; ++r) sum[r] = g[r] * Vec::load(xk + r * Vec::size);
          for (int r = 1; r < kTileVectors; ++r) sum[0] = sum[0] + sum[r];
          tiles.dv[i] += sum[0].reduce_add();
        }
      }
    }
  }
}

template <class V>
void many_rows(const Problem& p) {
  const BitmapBackwardArgs& a = p.a;
  const BitmapWeight& w = a.w;
  const int64_t kp = p.kp, m = a.m, words = w.words(), tiles = (m + kTileRows - 1) / kTileRows;
  const std::vector<float> gy = transposed_tiles(p.gy, m, w.n, a.num_threads);
  const std::vector<float> x = p.xr ? transposed_tiles(p.xr, m, kp, a.num_threads) : std::vector<float>();
  std::vector<float> gx(a.grad_x ? static_cast<size_t>(tiles * kp * kTileRows) : 0, 0.0f);
  const bool fp32_values = w.value_type == ValueType::Float32;
  std::vector<float> dv_sums(a.grad_values && !fp32_values ? static_cast<size_t>(w.nnz()) : 0, 0.0f);
  float* dv = a.grad_values ? (fp32_values ? static_cast<float*>(a.grad_values) : dv_sums.data()) : nullptr;
  if (dv && fp32_values) std::fill(dv, dv + w.nnz(), 0.0f);
  const Tiles t{gy.data(), p.xr ? x.data() : nullptr, a.grad_x ? gx.data() : nullptr, dv};
  // Ranges of bitmap words, a few per thread; each starts its rows' cursors where the range begins.
  const int64_t ranges = std::min<int64_t>(words, 4 * a.num_threads);
  parallel_for(ranges, a.num_threads, [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> start(static_cast<size_t>(w.n)), cursor(static_cast<size_t>(w.n));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t w0 = r * words / ranges, w1 = (r + 1) * words / ranges;
      for (int64_t n = 0; n < w.n; ++n) {
        int64_t offset = w.row_offsets[n];
        for (int64_t wd = 0; wd < w0; ++wd) offset += __builtin_popcountll(w.bitmap[n * words + wd]);
        start[n] = offset;
      }
      for (int64_t tile = 0; tile < tiles; ++tile) {
        std::copy(start.begin(), start.end(), cursor.begin());
        many_rows_words<V>(p, t, tile, w0, w1, cursor.data());
      }
    }
  });
  if (a.grad_values && !fp32_values) {
    uint16_t* out = static_cast<uint16_t*>(a.grad_values);
    parallel_for(w.nnz(), a.num_threads, [&](int64_t i0, int64_t i1) {
      int64_t i = i0;
      for (; i + Vec::size <= i1; i += Vec::size) Vec::load(dv + i).store(out + i);
      if (i < i1) Vec::load_partial(dv + i, static_cast<int>(i1 - i), 0.0f).store_partial(out + i, static_cast<int>(i1 - i));
    });
  }
  if (!a.grad_x) return;
  const size_t element = a.grad_y_dtype == Dtype::Float32 ? 4 : 2;
  parallel_for(m, a.num_threads, [&](int64_t m0, int64_t m1) {
    std::vector<float> row(static_cast<size_t>(w.k));
    for (int64_t i = m0; i < m1; ++i) {
      const float* tile = gx.data() + (i / kTileRows) * kp * kTileRows + i % kTileRows;
      for (int64_t k = 0; k < w.k; ++k) row[k] = tile[k * kTileRows];
      char* out = static_cast<char*>(a.grad_x) + i * w.k * element;
      if (a.grad_y_dtype == Dtype::Float32) {
        std::copy(row.begin(), row.end(), reinterpret_cast<float*>(out));
      } else {
        uint16_t* dst = reinterpret_cast<uint16_t*>(out);
        int64_t k = 0;
        for (; k + Vec::size <= w.k; k += Vec::size) Vec::load(row.data() + k).store(dst + k);
        if (k < w.k) Vec::load_partial(row.data() + k, static_cast<int>(w.k - k), 0.0f).store_partial(dst + k, static_cast<int>(w.k - k));
      }
    }
  });
}

template <class V>
void backward(const BitmapBackwardArgs& a, int64_t many) {
  const BitmapWeight& w = a.w;
  const int64_t kp = w.kp(), m = a.m;
  std::vector<float> gy(static_cast<size_t>(m * w.n));  // [M][N] fp32 (int8 values: times the row's scale)
  parallel_for(m, a.num_threads, [&](int64_t m0, int64_t m1) {
    fp32_rows(a.grad_y, a.grad_y_stride, a.grad_y_dtype, m0, m1, w.n, w.n, false, gy.data() + m0 * w.n);
    if (w.value_type == ValueType::Int8)
      for (int64_t i = m0; i < m1; ++i)
        for (int64_t n = 0; n < w.n; ++n) gy[i * w.n + n] *= w.scales[n];
  });
  std::vector<float> xr(a.grad_values ? static_cast<size_t>(m * kp) : 0);
  if (a.grad_values)
    parallel_for(m, a.num_threads, [&](int64_t m0, int64_t m1) {
      fp32_rows(a.x, a.x_stride, a.x_dtype, m0, m1, w.k, kp, w.value_type == ValueType::BFloat16,
                xr.data() + m0 * kp);
    });
  const Problem p{a, kp, gy.data(), a.grad_values ? xr.data() : nullptr};
  if (m >= many) return many_rows<V>(p);
  few_rows<V>(p);
}

}  // namespace

void bitmap_backward_kernel(const BitmapBackwardArgs& a, int64_t many_rows) {
  switch (a.w.value_type) {
    case ValueType::BFloat16: return backward<uint16_t>(a, many_rows);
    case ValueType::Int8: return backward<int8_t>(a, many_rows);
    default: return backward<float>(a, many_rows);
  }
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
