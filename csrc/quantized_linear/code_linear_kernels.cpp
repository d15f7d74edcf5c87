// Weight-only linear (int8 or FP8 codes, bf16 arithmetic) on the vector tiers (compiled once per tier).
//
// AVX-512: codes decoded in registers (code_decode.h) and multiplied with VDPBF16PS against bf16 activation
// pairs; a block is up to 4 rows x 4 panels (64 channels). AVX2 and scalar: a 256-entry fp32 table of the code
// values and fp32 products of the bf16-rounded activations, over the same panels.
#include <algorithm>
#include <vector>

#include "common/parallel_for.h"
#include "common/simd/vec.h"
#include "quantized_linear/quantized_rows.h"

#if APT_SIMD_LEVEL == 2
#include "quantized_linear/code_decode.h"
#endif

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

constexpr int kRowsPerBlock = 4;
constexpr int kPanelsPerBlock = 4;
constexpr int64_t kChunkN = kQPanel * kPanelsPerBlock;

struct CodeProblem {
  const CodeLinearArgs& a;
  int64_t kp, np, groups;
  const uint16_t* xb;  // [M][kp] bf16 activations

  int64_t group_rows(int64_t g) const { return groups == 1 ? kp / 4 : a.shape.group_size / 4; }  // 64-byte rows
  const uint8_t* panel(int64_t p) const { return a.panels + p * kp * kQPanel; }
};

#if APT_SIMD_LEVEL == 2
// Panel rows fetched ahead of use: the decode keeps the core busy, so the hardware prefetcher alone leaves the
// weight streams short of the memory bandwidth at one row.
constexpr int kPrefetchRows = 16;

template <int MR, int NP>
void code_block(const CodeProblem& pr, const CodeDecoder& decoder, int64_t m0, int64_t p0, float* total) {
  const int64_t panel_bytes = pr.kp * kQPanel;
  const uint8_t* w_base = pr.panel(p0);
  const uint16_t* x_rows[MR];
  for (int i = 0; i < MR; ++i) x_rows[i] = pr.xb + (m0 + i) * pr.kp;
  int64_t r0 = 0;
  for (int64_t g = 0; g < pr.groups; ++g) {
    __m512 acc[MR][NP];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NP; ++j) acc[i][j] = _mm512_setzero_ps();
    const int64_t r_end = r0 + pr.group_rows(g);
    for (int64_t r = r0; r < r_end; ++r) {
      __m512i w0[NP], w1[NP];
      for (int j = 0; j < NP; ++j) {
        const uint8_t* row = w_base + j * panel_bytes + r * 64;
        _mm_prefetch(reinterpret_cast<const char*>(row + kPrefetchRows * 64), _MM_HINT_T0);
        decoder.decode(_mm512_loadu_si512(row), &w0[j], &w1[j]);
      }
      for (int i = 0; i < MR; ++i) {
        int32_t pair0, pair1;
        std::memcpy(&pair0, x_rows[i] + r * 4, 4);
        std::memcpy(&pair1, x_rows[i] + r * 4 + 2, 4);
        const __m512bh x0 = (__m512bh)_mm512_set1_epi32(pair0), x1 = (__m512bh)_mm512_set1_epi32(pair1);
        for (int j = 0; j < NP; ++j) {
          acc[i][j] = _mm512_dpbf16_ps(acc[i][j], x0, (__m512bh)w0[j]);
          acc[i][j] = _mm512_dpbf16_ps(acc[i][j], x1, (__m512bh)w1[j]);
        }
      }
    }
    r0 = r_end;
    for (int j = 0; j < NP; ++j) {
      const __m512 scale = _mm512_loadu_ps(pr.a.scales + g * pr.np + (p0 + j) * kQPanel);
      for (int i = 0; i < MR; ++i) {
        float* t = total + i * kChunkN + j * kQPanel;
        _mm512_storeu_ps(t, _mm512_add_ps(_mm512_loadu_ps(t), _mm512_mul_ps(acc[i][j], scale)));
      }
    }
  }
}

template <int MR>
void code_block_rows(const CodeProblem& pr, const CodeDecoder& d, int64_t m0, int64_t p0, int panels, float* total) {
  switch (panels) {
    case 1: return code_block<MR, 1>(pr, d, m0, p0, total);
    case 2: return code_block<MR, 2>(pr, d, m0, p0, total);
    case 3: return code_block<MR, 3>(pr, d, m0, p0, total);
    default: return code_block<MR, 4>(pr, d, m0, p0, total);
  }
}

struct BlockComputer {
  CodeDecoder decoder;
  explicit BlockComputer(CodeFormat format) : decoder(format) {}
  void operator()(const CodeProblem& pr, int64_t m0, int rows, int64_t p0, int panels, float* total) const {
    switch (rows) {
      case 1: return code_block_rows<1>(pr, decoder, m0, p0, panels, total);
      case 2: return code_block_rows<2>(pr, decoder, m0, p0, panels, total);
      case 3: return code_block_rows<3>(pr, decoder, m0, p0, panels, total);
      default: return code_block_rows<4>(pr, decoder, m0, p0, panels, total);
    }
  }
};
#else
// Offset of (channel c, input k) in a CodePanel (quantized_linear.h).
inline int64_t code_offset(int64_t c, int64_t k) {
  const int64_t pair_row = k / 2, byte_in_row = c * 2 + k % 2;
  return (pair_row / 2) * 64 + ((byte_in_row / 8) * 2 + pair_row % 2) * 8 + byte_in_row % 8;
}

struct BlockComputer {
  float values[256];
  explicit BlockComputer(CodeFormat format) {
    for (int code = 0; code < 256; ++code) values[code] = code_value(format, static_cast<uint8_t>(code));
  }
  void operator()(const CodeProblem& pr, int64_t m0, int rows, int64_t p0, int panels, float* total) const {
    for (int i = 0; i < rows; ++i) {
      const uint16_t* x = pr.xb + (m0 + i) * pr.kp;
      for (int j = 0; j < panels; ++j) {
        const uint8_t* w = pr.panel(p0 + j);
        float* t = total + i * kChunkN + j * kQPanel;
        int64_t k0 = 0;
        for (int64_t g = 0; g < pr.groups; ++g) {
          const int64_t k_end = k0 + pr.group_rows(g) * 4;
          const float* scale = pr.a.scales + g * pr.np + (p0 + j) * kQPanel;
          for (int c = 0; c < kQPanel; ++c) {
            float acc = 0.0f;
            for (int64_t k = k0; k < k_end; ++k) acc += load_scalar(x, Dtype::BFloat16, k) * values[w[code_offset(c, k)]];
            t[c] = t[c] + acc * scale[c];
          }
          k0 = k_end;
        }
      }
    }
  }
};
#endif

}  // namespace

void code_linear_kernel(const CodeLinearArgs& a) {
  const QuantizedShape& s = a.shape;
  const int64_t kp = s.kp(), np = s.np(), m = a.m;
  std::vector<uint16_t> xb(static_cast<size_t>(m * kp));
  parallel_for(m, a.num_threads, [&](int64_t begin, int64_t end) {
    bf16_rows(a.x, a.x_stride, a.x_dtype, begin, end, s.k, kp, xb.data());
  });
  const CodeProblem pr{a, kp, np, s.groups(), xb.data()};
  const BlockComputer compute(a.format);
  const int64_t chunks = (s.n + kChunkN - 1) / kChunkN;
  const int64_t row_blocks = (m + kRowsPerBlock - 1) / kRowsPerBlock;
  const size_t element = a.x_dtype == Dtype::Float32 ? 4 : 2;
  const int64_t row_runs = std::max<int64_t>(1, std::min<int64_t>(row_blocks, 2 * a.num_threads / std::max<int64_t>(chunks, 1)));
  const int64_t blocks_per_run = (row_blocks + row_runs - 1) / row_runs;
  parallel_for(chunks * row_runs, a.num_threads, [&](int64_t begin, int64_t end) {
    alignas(64) float total[kRowsPerBlock * kChunkN];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t chunk = task / row_runs, run = task % row_runs;
      const int64_t p0 = chunk * kPanelsPerBlock, n0 = chunk * kChunkN;
      const int panels = static_cast<int>(std::min<int64_t>(kPanelsPerBlock, np / kQPanel - p0));
      const int64_t count = std::min<int64_t>(kChunkN, s.n - n0);
      for (int64_t rb = run * blocks_per_run; rb < std::min(row_blocks, (run + 1) * blocks_per_run); ++rb) {
        const int64_t m0 = rb * kRowsPerBlock;
        const int rows = static_cast<int>(std::min<int64_t>(kRowsPerBlock, m - m0));
        std::fill(total, total + kRowsPerBlock * kChunkN, 0.0f);
        compute(pr, m0, rows, p0, panels, total);
        for (int i = 0; i < rows; ++i) {
          float* t = total + i * kChunkN;
          if (a.bias != nullptr)
            for (int64_t c = 0; c < count; ++c) t[c] = t[c] + a.bias[n0 + c];
          store_row(t, count, static_cast<char*>(a.y) + ((m0 + i) * a.y_stride + n0) * element, a.x_dtype);
        }
      }
    }
  });
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
