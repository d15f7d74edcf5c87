// Int8-weight linear on the vector tiers (compiled once per tier): activations quantized per row to 8 or 16
// bits (two int8 halves), int8 products summed exactly in int32 per group, the fp32 epilogue of
// quantized_linear.h.
//
// AVX-512: u8 x s8 VPDPBUSD on the Int8Panels rows (activation bytes + 128, the precomputed compensation
// 128 * sum(w) taken off); a block is up to 4 byte-rows (4 activation rows at 8 bits, 2 at 16) x 4 panels (64
// channels), accumulators in registers. AVX2 and scalar: s8 x s8 products in portable loops over the same panels.
// Every tier gives the same int32 sums, and with the same fp32 epilogue the same outputs, bit for bit.
#include <algorithm>
#include <vector>

#include "common/parallel_for.h"
#include "common/simd/vec.h"
#include "quantized_linear/quantized_rows.h"

#if APT_SIMD_LEVEL == 2
#include <immintrin.h>
#endif

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

constexpr int kByteRowsPerBlock = 4;
constexpr int kPanelsPerBlock = 4;
constexpr int64_t kChunkN = kQPanel * kPanelsPerBlock;  // channels per block

#if APT_SIMD_LEVEL == 2
constexpr int kOffset = 128;  // u8 activations for VPDPBUSD
#else
constexpr int kOffset = 0;
#endif

struct Int8Problem {
  const Int8LinearArgs& a;
  int64_t kp, np, groups;
  int halves;          // byte rows per activation row: 1 (8 bits) or 2 (16 bits)
  const uint8_t* qa;   // [M * halves][kp] quantized activations (+ kOffset)
  const float* a_scale;  // [M][groups] their scales

  int64_t group_rows(int64_t g) const { return groups == 1 ? kp / 4 : a.shape.group_size / 4; }  // 64-byte rows
  const int8_t* panel(int64_t p) const { return a.panels + p * kp * kQPanel; }
  const uint8_t* byte_row(int64_t m, int half) const { return qa + (m * halves + half) * kp; }
};

// The exact sums of one activation row and 16 channels from the raw accumulators of its byte rows (see
// quantize_rows: VNNI rows carry +128, signed rows carry l - 128), as the fp32 term added to the total:
//   8 bits: (float(S) * w_scale) * a_scale;  16 bits: ((float(S_h) * 256 + float(S_l)) * w_scale) * a_scale.
#if APT_SIMD_LEVEL == 2
constexpr int kPrefetchRows = 16;  // panel rows fetched ahead of use (see code_linear_kernels.cpp)

inline __m512 group_term(const __m512i* acc, int halves, __m512i comp, __m512 w_scale, float a_scale) {
  __m512 sum = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[0], comp));
  if (halves == 2) sum = _mm512_add_ps(_mm512_mul_ps(sum, _mm512_set1_ps(256.0f)), _mm512_cvtepi32_ps(acc[1]));
  return _mm512_mul_ps(_mm512_mul_ps(sum, w_scale), _mm512_set1_ps(a_scale));
}

// total[r / halves][16 j ...] += terms for byte rows m0 * halves .. + RB of panels p0 .. p0 + NP.
template <int RB, int NP>
void int8_block(const Int8Problem& pr, int64_t m0, int64_t p0, float* total) {
  const int64_t panel_bytes = pr.kp * kQPanel;
  const int8_t* w_base = pr.panel(p0);
  const uint8_t* rows = pr.qa + m0 * pr.halves * pr.kp;
  int64_t r0 = 0;
  for (int64_t g = 0; g < pr.groups; ++g) {
    __m512i acc[NP][RB];
    for (int j = 0; j < NP; ++j)
      for (int i = 0; i < RB; ++i) acc[j][i] = _mm512_setzero_si512();
    const int64_t r_end = r0 + pr.group_rows(g);
    for (int64_t r = r0; r < r_end; ++r) {
      __m512i w[NP];
      for (int j = 0; j < NP; ++j) {
        const int8_t* row = w_base + j * panel_bytes + r * 64;
        _mm_prefetch(reinterpret_cast<const char*>(row + kPrefetchRows * 64), _MM_HINT_T0);
        w[j] = _mm512_loadu_si512(row);
      }
      for (int i = 0; i < RB; ++i) {
        int32_t quad;
        std::memcpy(&quad, rows + i * pr.kp + r * 4, 4);
        const __m512i a = _mm512_set1_epi32(quad);
        for (int j = 0; j < NP; ++j) acc[j][i] = _mm512_dpbusd_epi32(acc[j][i], a, w[j]);
      }
    }
    r0 = r_end;
    const int64_t n0 = p0 * kQPanel;
    for (int j = 0; j < NP; ++j) {
      const __m512i comp = _mm512_loadu_si512(pr.a.compensation + g * pr.np + n0 + j * kQPanel);
      const __m512 scale = _mm512_loadu_ps(pr.a.scales + g * pr.np + n0 + j * kQPanel);
      for (int i = 0; i < RB; i += pr.halves) {
        float* t = total + (i / pr.halves) * kChunkN + j * kQPanel;
        const float a_scale = pr.a_scale[(m0 + i / pr.halves) * pr.groups + g];
        _mm512_storeu_ps(t, _mm512_add_ps(_mm512_loadu_ps(t), group_term(&acc[j][i], pr.halves, comp, scale, a_scale)));
      }
    }
  }
}

template <int RB>
void int8_block_rows(const Int8Problem& pr, int64_t m0, int64_t p0, int panels, float* total) {
  switch (panels) {
    case 1: return int8_block<RB, 1>(pr, m0, p0, total);
    case 2: return int8_block<RB, 2>(pr, m0, p0, total);
    case 3: return int8_block<RB, 3>(pr, m0, p0, total);
    default: return int8_block<RB, 4>(pr, m0, p0, total);
  }
}

void compute_block(const Int8Problem& pr, int64_t m0, int rows, int64_t p0, int panels, float* total) {
  switch (rows * pr.halves) {
    case 1: return int8_block_rows<1>(pr, m0, p0, panels, total);
    case 2: return int8_block_rows<2>(pr, m0, p0, panels, total);
    case 3: return int8_block_rows<3>(pr, m0, p0, panels, total);
    default: return int8_block_rows<4>(pr, m0, p0, panels, total);
  }
}
#else
void compute_block(const Int8Problem& pr, int64_t m0, int rows, int64_t p0, int panels, float* total) {
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < panels; ++j) {
      const int8_t* w = pr.panel(p0 + j);
      float* t = total + i * kChunkN + j * kQPanel;
      int64_t r0 = 0;
      for (int64_t g = 0; g < pr.groups; ++g) {
        int32_t sums[2][kQPanel] = {};
        const int64_t r_end = r0 + pr.group_rows(g);
        for (int half = 0; half < pr.halves; ++half) {
          const int8_t* a = reinterpret_cast<const int8_t*>(pr.byte_row(m0 + i, half));
          for (int64_t r = r0; r < r_end; ++r)
            for (int c = 0; c < kQPanel; ++c)
              for (int q = 0; q < 4; ++q) sums[half][c] += int32_t{a[r * 4 + q]} * int32_t{w[r * 64 + c * 4 + q]};
        }
        r0 = r_end;
        const int64_t n = (p0 + j) * kQPanel;
        const float* scale = pr.a.scales + g * pr.np + n;
        const int32_t* comp = pr.a.compensation + g * pr.np + n;
        const float a_scale = pr.a_scale[(m0 + i) * pr.groups + g];
        for (int c = 0; c < kQPanel; ++c) {
          // signed byte rows: S_h = sums[0]; S_l = sums[1] + comp (the low half was stored as l - 128).
          const float sum = pr.halves == 1 ? static_cast<float>(sums[0][c])
                                           : static_cast<float>(sums[0][c]) * 256.0f +
                                                 static_cast<float>(sums[1][c] + comp[c]);
          t[c] = t[c] + (sum * scale[c]) * a_scale;
        }
      }
    }
}
#endif

}  // namespace

void int8_linear_kernel(const Int8LinearArgs& a) {
  const QuantizedShape& s = a.shape;
  const int64_t kp = s.kp(), np = s.np(), m = a.m;
  const int halves = a.activation_bits == 8 ? 1 : 2;
  std::vector<uint8_t> qa(static_cast<size_t>(m * halves * kp));
  std::vector<float> a_scale(static_cast<size_t>(m * s.groups()));
  parallel_for(m, a.num_threads, [&](int64_t begin, int64_t end) {
    quantize_rows(a.x, a.x_stride, a.x_dtype, a.activation_bits, begin, end, s.k, kp, s.group_size, kOffset,
                  qa.data(), a_scale.data());
  });
  const Int8Problem pr{a, kp, np, s.groups(), halves, qa.data(), a_scale.data()};
  const int rows_per_block = kByteRowsPerBlock / halves;
  const int64_t chunks = (s.n + kChunkN - 1) / kChunkN;
  const int64_t row_blocks = (m + rows_per_block - 1) / rows_per_block;
  const size_t element = a.x_dtype == Dtype::Float32 ? 4 : 2;
  // Tasks: a chunk of 64 channels for a run of row blocks; channel chunks outermost so a thread's weights stay
  // in cache across its rows.
  const int64_t row_runs =
      std::max<int64_t>(1, std::min<int64_t>(row_blocks, 2 * a.num_threads / std::max<int64_t>(chunks, 1)));
  const int64_t blocks_per_run = (row_blocks + row_runs - 1) / row_runs;
  parallel_for(chunks * row_runs, a.num_threads, [&](int64_t begin, int64_t end) {
    alignas(64) float total[kByteRowsPerBlock * kChunkN];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t chunk = task / row_runs, run = task % row_runs;
      const int64_t p0 = chunk * kPanelsPerBlock, n0 = chunk * kChunkN;
      const int panels = static_cast<int>(std::min<int64_t>(kPanelsPerBlock, np / kQPanel - p0));
      const int64_t count = std::min<int64_t>(kChunkN, s.n - n0);
      for (int64_t rb = run * blocks_per_run; rb < std::min(row_blocks, (run + 1) * blocks_per_run); ++rb) {
        const int64_t m0 = rb * rows_per_block;
        const int rows = static_cast<int>(std::min<int64_t>(rows_per_block, m - m0));
        std::fill(total, total + kByteRowsPerBlock * kChunkN, 0.0f);
        compute_block(pr, m0, rows, p0, panels, total);
        for (int i = 0; i < rows; ++i) {
          float* t = total + i * kChunkN;
          add_bias_row(t, count, a.bias, n0);
          store_row(t, count, static_cast<char*>(a.y) + ((m0 + i) * a.y_stride + n0) * element, a.x_dtype);
        }
      }
    }
  });
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
