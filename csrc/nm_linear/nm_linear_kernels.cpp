// N:M sparse linear forward on the vector tiers (compiled once per tier; nm_linear.h has the arithmetic).
//
// Portable (every tier, and AVX-512 for patterns other than 2:4 / 4:8): each row's kept columns decoded once, then
// per activation row a gather of x (Vec::gather) times the values (fp32 FMA), or exact int32 sums for int8.
// AVX-512, 2:4 and 4:8: x gathered in registers per window of kept values (nm_gather.h); a block is up to 4 weight
// rows x 4 activation rows, accumulators in registers, reduced across lanes once per row.
#include <algorithm>
#include <vector>

#include "common/float_rows.h"
#include "common/parallel_for.h"
#include "common/simd/vec.h"
#include "nm_linear/nm_positions.h"

#if APT_SIMD_LEVEL == 2
#include <immintrin.h>

#include "nm_linear/nm_gather.h"
#endif

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

constexpr int64_t kPad = 128;           // activation rows padded to a multiple of this (the widest window)
constexpr int64_t kRowsPerTask = 16;    // weight rows per parallel task
constexpr int kOffset = 128;            // int8 activations + 128 for the gather path: VPDPBUSD is unsigned x signed
// Kept values one accumulator chain of the portable kernel sums before adding its sum to the total: a long row in
// one chain loses ~K / Vec::size roundings of the growing partial sum per lane; chunked, it stays near torch's.
constexpr int64_t kChainValues = 64;

// The activations, prepared once: fp32 rows (bf16-rounded for bf16 values), bf16 rows, or int8 rows + scales.
struct Activations {
  int64_t kp = 0;             // row length, >= k + 1 (column k is zero: the portable tail gathers it)
  std::vector<float> xf;      // [M][kp]
  std::vector<uint16_t> xb;   // [M][kp]
  std::vector<uint8_t> xq;    // [M][kp], q (+ kOffset for the gather path)
  std::vector<float> a_scale; // [M]
};

bool gathers_in_registers(const NmShape& s) { return APT_SIMD_LEVEL == 2 && s.half_dense(); }

Activations prepare(const NmLinearArgs& a) {
  const NmShape& s = a.w.shape;
  Activations act;
  act.kp = round_up(s.k + 1, kPad);
  const int64_t kp = act.kp;
  if (a.w.dtype == NmValues::Int8) {
    act.xq.resize(static_cast<size_t>(a.m * kp));
    act.a_scale.resize(static_cast<size_t>(a.m));
    parallel_for(a.m, a.num_threads, [&](int64_t begin, int64_t end) {
      quantize_rows(a.x, a.x_stride, a.x_dtype, 8, begin, end, s.k, kp, s.k, gathers_in_registers(s) ? kOffset : 0,
                    act.xq.data(), act.a_scale.data());
    });
  } else if (a.w.dtype == NmValues::BFloat16 && gathers_in_registers(s)) {
    act.xb.resize(static_cast<size_t>(a.m * kp));
    parallel_for(a.m, a.num_threads, [&](int64_t begin, int64_t end) {
      bf16_rows(a.x, a.x_stride, a.x_dtype, begin, end, s.k, kp, act.xb.data());
    });
  } else {
    act.xf.resize(static_cast<size_t>(a.m * kp));
    parallel_for(a.m, a.num_threads, [&](int64_t begin, int64_t end) {
      float_rows(a.x, a.x_stride, a.x_dtype, a.w.dtype == NmValues::BFloat16, begin, end, s.k, kp, act.xf.data());
    });
  }
  return act;
}

// y[i][n] for int8: the exact sum's fp32 epilogue, in the reference's order.
inline float int8_output(int32_t sum, float w_scale, float a_scale) {
  return (static_cast<float>(sum) * w_scale) * a_scale;
}

// --- portable ---------------------------------------------------------------------------------------------------

inline Vec load_values(const void* values, NmValues dtype, int64_t j, int count) {
  if (dtype == NmValues::Float32) {
    const float* p = static_cast<const float*>(values) + j;
    return count == Vec::size ? Vec::load(p) : Vec::load_partial(p, count, 0.0f);
  }
  const uint16_t* p = static_cast<const uint16_t*>(values) + j;
  return count == Vec::size ? Vec::load(p) : Vec::load_partial(p, count, 0.0f);
}

// out[i * ld + (n - n0)] = row n's output for activation rows i (before bias), rows n in [n0, n1).
void portable_rows(const NmLinearArgs& a, const Activations& act, int64_t n0, int64_t n1, float* out, int64_t ld) {
  const NmShape& s = a.w.shape;
  const int64_t kept = s.kept();
  std::vector<int32_t> columns(static_cast<size_t>(kept));
  std::vector<float> where(static_cast<size_t>(kept));  // the columns as floats, for Vec::gather
  for (int64_t n = n0; n < n1; ++n) {
    nm_row_columns(s, a.w.indices + n * s.index_bytes(), columns.data());
    if (a.w.dtype == NmValues::Int8) {
      const int8_t* w = static_cast<const int8_t*>(a.w.values) + n * kept;
      for (int64_t i = 0; i < a.m; ++i) {
        const int8_t* xq = reinterpret_cast<const int8_t*>(act.xq.data() + i * act.kp);
        int32_t sum = 0;
        for (int64_t j = 0; j < kept; ++j) sum += int32_t{xq[columns[j]]} * int32_t{w[j]};
        out[i * ld + (n - n0)] = int8_output(sum, a.w.scales[n], act.a_scale[i]);
      }
      continue;
    }
    for (int64_t j = 0; j < kept; ++j) where[j] = static_cast<float>(columns[j]);
    const size_t element = a.w.dtype == NmValues::Float32 ? 4 : 2;
    const void* w = static_cast<const char*>(a.w.values) + n * kept * element;
    for (int64_t i = 0; i < a.m; ++i) {
      const float* x = act.xf.data() + i * act.kp;
      Vec total(0.0f);
      for (int64_t j0 = 0; j0 < kept; j0 += kChainValues) {  // each chain summed on its own, then added
        Vec acc(0.0f);
        for (int64_t j = j0; j < std::min(kept, j0 + kChainValues); j += Vec::size) {
          const int count = static_cast<int>(std::min<int64_t>(Vec::size, kept - j));
          // past the row's values: weight 0 at column k (a zero of the padding)
          const Vec at = count == Vec::size ? Vec::load(where.data() + j)
                                            : Vec::load_partial(where.data() + j, count, static_cast<float>(s.k));
          acc = Vec::fmadd(load_values(w, a.w.dtype, j, count), Vec::gather(x, at), acc);
        }
        total = total + acc;
      }
      out[i * ld + (n - n0)] = total.reduce_add();
    }
  }
}

#if APT_SIMD_LEVEL == 2
// --- AVX-512, 2:4 and 4:8: x gathered in registers --------------------------------------------------------------

// Values fetched ahead of use, per row into L1; and, into L2, the same window of the next block of rows (values
// and positions: the hardware prefetchers stop at each 4 KiB page, which a block of 2:4 int8 rows is).
constexpr int kPrefetchBytes = 512;

// A block: R weight rows [n0, n0 + R) against MR activation rows [i0, i0 + MR), every window of the rows.
template <NmValues V, int MR, int R>
void gather_block(const NmLinearArgs& a, const Activations& act, const NmGatherIndex& index, int64_t n0, int64_t i0,
                  float* out, int64_t ld) {
  const NmShape& s = a.w.shape;
  const int64_t kept = s.kept(), row_bytes = s.index_bytes();
  constexpr int element = V == NmValues::Float32 ? 4 : V == NmValues::BFloat16 ? 2 : 1;
  const char* values = static_cast<const char*>(a.w.values) + n0 * kept * element;
  const uint8_t* indices = a.w.indices + n0 * row_bytes;
  __m512i acc[MR][R], sum_w[R];  // fp32 (float values) or int32 (int8) accumulators
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_si512();
  for (int r = 0; r < R; ++r) sum_w[r] = _mm512_setzero_si512();
  const int per_window = index.values();
  const int64_t windows = (kept + per_window - 1) / per_window;
  for (int64_t w = 0; w < windows; ++w) {
    const int64_t j0 = w * per_window;
    const int count = static_cast<int>(std::min<int64_t>(per_window, kept - j0));
    const int bytes = static_cast<int>(std::min<int64_t>(index.window_bytes(), row_bytes - w * index.window_bytes()));
    __m512i wv[R], at[R];
    for (int r = 0; r < R; ++r) {
      const char* row = values + (r * kept + j0) * element;
      _mm_prefetch(row + kPrefetchBytes, _MM_HINT_T0);
      _mm_prefetch(row + R * kept * element, _MM_HINT_T1);  // the next block's rows, into L2
      _mm_prefetch(reinterpret_cast<const char*>(indices) + (r + R) * row_bytes + w * index.window_bytes(),
                   _MM_HINT_T1);
      if (V == NmValues::Float32) wv[r] = _mm512_castps_si512(_mm512_maskz_loadu_ps(_cvtu32_mask16((1u << count) - 1), row));
      else if (V == NmValues::BFloat16) wv[r] = _mm512_maskz_loadu_epi16(_cvtu32_mask32(count == 32 ? ~0u : (1u << count) - 1), row);
      else wv[r] = _mm512_maskz_loadu_epi8(_cvtu64_mask64(count == 64 ? ~uint64_t{0} : (uint64_t{1} << count) - 1), row);
      at[r] = index.decode(indices + r * row_bytes + w * index.window_bytes(), bytes);
      if (V == NmValues::Int8) sum_w[r] = _mm512_dpbusd_epi32(sum_w[r], _mm512_set1_epi8(1), wv[r]);
    }
    const int64_t c0 = w * index.columns();
    for (int i = 0; i < MR; ++i) {
      if (V == NmValues::Float32) {
        const float* x = act.xf.data() + (i0 + i) * act.kp + c0;
        const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
        for (int r = 0; r < R; ++r) {
          const __m512 g = _mm512_permutex2var_ps(x0, at[r], x1);
          acc[i][r] = _mm512_castps_si512(_mm512_fmadd_ps(g, _mm512_castsi512_ps(wv[r]), _mm512_castsi512_ps(acc[i][r])));
        }
      } else {
        const uint8_t* x = V == NmValues::BFloat16
            ? reinterpret_cast<const uint8_t*>(act.xb.data() + (i0 + i) * act.kp + c0)
            : act.xq.data() + (i0 + i) * act.kp + c0;
        const __m512i x0 = _mm512_loadu_si512(x), x1 = _mm512_loadu_si512(x + 64);
        for (int r = 0; r < R; ++r) {
          const __m512i g = _mm512_permutex2var_epi8(x0, at[r], x1);
          if (V == NmValues::BFloat16)
            acc[i][r] = _mm512_castps_si512(_mm512_dpbf16_ps(_mm512_castsi512_ps(acc[i][r]), (__m512bh)g, (__m512bh)wv[r]));
          else
            acc[i][r] = _mm512_dpbusd_epi32(acc[i][r], g, wv[r]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const int64_t n = n0 + r;
    const int32_t compensation = V == NmValues::Int8 ? kOffset * _mm512_reduce_add_epi32(sum_w[r]) : 0;
    for (int i = 0; i < MR; ++i) {
      float& y = out[(i0 + i) * ld + r];
      if (V == NmValues::Int8)
        y = int8_output(_mm512_reduce_add_epi32(acc[i][r]) - compensation, a.w.scales[n], act.a_scale[i0 + i]);
      else
        y = _mm512_reduce_add_ps(_mm512_castsi512_ps(acc[i][r]));
    }
  }
}

template <NmValues V, int R>
void gather_rows_of(const NmLinearArgs& a, const Activations& act, const NmGatherIndex& index, int64_t n0, float* out,
                    int64_t ld) {
  constexpr int kMaxRows = V == NmValues::Int8 ? 3 : 4;
  int64_t i0 = 0;
  for (; i0 + kMaxRows <= a.m; i0 += kMaxRows) gather_block<V, kMaxRows, R>(a, act, index, n0, i0, out, ld);
  switch (a.m - i0) {
    case 1: return gather_block<V, 1, R>(a, act, index, n0, i0, out, ld);
    case 2: return gather_block<V, 2, R>(a, act, index, n0, i0, out, ld);
    case 3: if (kMaxRows > 3) return gather_block<V, 3, R>(a, act, index, n0, i0, out, ld);
    default: return;
  }
}

template <NmValues V>
void gather_rows(const NmLinearArgs& a, const Activations& act, int64_t n0, int64_t n1, float* out, int64_t ld) {
  const NmGatherIndex index(a.w.shape, V == NmValues::Float32 ? NmLanes::Dword
                                       : V == NmValues::BFloat16 ? NmLanes::WordBytes : NmLanes::Bytes);
  constexpr int R = 4;
  int64_t n = n0;
  for (; n + R <= n1; n += R) gather_rows_of<V, R>(a, act, index, n, out + (n - n0), ld);
  for (; n < n1; ++n) gather_rows_of<V, 1>(a, act, index, n, out + (n - n0), ld);
}
#endif

void compute_rows(const NmLinearArgs& a, const Activations& act, int64_t n0, int64_t n1, float* out, int64_t ld) {
#if APT_SIMD_LEVEL == 2
  if (a.w.shape.half_dense()) {
    switch (a.w.dtype) {
      case NmValues::Float32: return gather_rows<NmValues::Float32>(a, act, n0, n1, out, ld);
      case NmValues::BFloat16: return gather_rows<NmValues::BFloat16>(a, act, n0, n1, out, ld);
      default: return gather_rows<NmValues::Int8>(a, act, n0, n1, out, ld);
    }
  }
#endif
  portable_rows(a, act, n0, n1, out, ld);
}

}  // namespace

void nm_linear_kernel(const NmLinearArgs& a) {
  const NmShape& s = a.w.shape;
  const Activations act = prepare(a);
  const size_t element = a.x_dtype == Dtype::Float32 ? 4 : 2;
  parallel_for((s.n + kRowsPerTask - 1) / kRowsPerTask, a.num_threads, [&](int64_t begin, int64_t end) {
    std::vector<float> out(static_cast<size_t>(a.m * kRowsPerTask));  // [M][count]
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n0 = task * kRowsPerTask, n1 = std::min(s.n, n0 + kRowsPerTask), count = n1 - n0;
      compute_rows(a, act, n0, n1, out.data(), count);
      for (int64_t i = 0; i < a.m; ++i) {
        float* row = out.data() + i * count;
        add_bias_row(row, count, a.bias, n0);
        store_row(row, count, static_cast<char*>(a.y) + (i * a.y_stride + n0) * element, a.x_dtype);
      }
    }
  });
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
