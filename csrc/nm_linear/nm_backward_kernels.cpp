// N:M sparse linear backward on the vector tiers (compiled once per tier), fp32 arithmetic, in windows of 32 input
// columns:
//   grad_x:      each window of up to 1024 weight rows expanded to dense fp32 [rows][32] (VEXPANDPS with the rows'
//                kept-column masks on AVX-512 for 2:4 / 4:8, a scatter of the decoded columns otherwise), then
//                grad_x[:, window] += grad_y[:, rows] . expanded by the broadcast micro-kernel;
//   grad_values: grad_y[:, rows]^T . x[:, window] by the same micro-kernel into a dense [rows][32] block, of which
//                the kept entries are the masked dW of those rows (the other half of the products is discarded:
//                the micro-kernel's full vectors are still the cheapest way to form them).
#include <algorithm>
#include <vector>

#include "common/broadcast_gemm.h"
#include "common/float_rows.h"
#include "common/parallel_for.h"
#include "common/simd/vec.h"
#include "nm_linear/nm_positions.h"

#if APT_SIMD_LEVEL == 2
#include <immintrin.h>
#endif

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

constexpr int64_t kWindow = 32;             // input columns per window
constexpr int kWindowVectors = kWindow / Vec::size;
constexpr int64_t kExpandRows = 1024;       // weight rows expanded per grad_x pass
constexpr int64_t kValueRows = 48;          // weight rows per grad_values block
constexpr int64_t kWindowsPerTask = 8;      // grad_values: windows sharing one pass over grad_y

// Value j of row n as fp32 (int8 dequantized).
inline float weight_value(const NmWeight& w, int64_t n, int64_t j) {
  const int64_t at = n * w.shape.kept() + j;
  switch (w.dtype) {
    case NmValues::Float32: return static_cast<const float*>(w.values)[at];
    case NmValues::BFloat16: return load_scalar(w.values, Dtype::BFloat16, at);
    default: return static_cast<float>(static_cast<const int8_t*>(w.values)[at]) * w.scales[n];
  }
}

// The first value of window `window` and how many values it holds.
inline void window_values(const NmShape& s, int64_t window, int64_t* first, int64_t* count) {
  const int64_t per_window = kWindow / s.group * s.keep;
  *first = window * per_window;
  *count = std::min(per_window, s.kept() - *first);
}

// dense[0:32] = row n of W over columns [32 window, 32 window + 32), zero where pruned or past k.
void expand_window(const NmWeight& w, const NmMaskTable& masks, int64_t n, int64_t window, float* dense) {
  const NmShape& s = w.shape;
  int64_t first, count;
  window_values(s, window, &first, &count);
  const uint8_t* row = w.indices + n * s.index_bytes();
#if APT_SIMD_LEVEL == 2
  if (s.half_dense()) {
    const uint64_t mask = masks.columns(row, window * kWindow / 8, kWindow / 8);
    alignas(64) float staged[kWindow / 2];
    const float* values;
    if (w.dtype == NmValues::Float32) {
      values = static_cast<const float*>(w.values) + n * s.kept() + first;
    } else {
      for (int64_t j = 0; j < count; ++j) staged[j] = weight_value(w, n, first + j);
      values = staged;
    }
    const __mmask16 low = static_cast<__mmask16>(mask), high = static_cast<__mmask16>(mask >> 16);
    _mm512_storeu_ps(dense, _mm512_maskz_expandloadu_ps(low, values));
    _mm512_storeu_ps(dense + 16, _mm512_maskz_expandloadu_ps(high, values + _mm_popcnt_u32(low)));
    return;
  }
#endif
  (void)masks;
  std::fill(dense, dense + kWindow, 0.0f);
  for (int64_t j = first; j < first + count; ++j)
    dense[j / s.keep * s.group + nm_position(row, s.index_bytes(), j, s.bits()) - window * kWindow] =
        weight_value(w, n, j);
}

void grad_input(const NmBackwardArgs& a, const float* g, float* grad_x, int64_t ldx) {
  const NmShape& s = a.w.shape;
  const NmMaskTable masks = s.half_dense() ? NmMaskTable(s) : NmMaskTable(NmShape{});
  const int64_t windows = ldx / kWindow;
  for (int64_t n0 = 0; n0 < s.n; n0 += kExpandRows) {
    const int64_t rows = std::min(kExpandRows, s.n - n0);
    parallel_for(windows, a.num_threads, [&](int64_t begin, int64_t end) {
      std::vector<float> dense(static_cast<size_t>(rows * kWindow));  // [rows][32]
      for (int64_t window = begin; window < end; ++window) {
        for (int64_t r = 0; r < rows; ++r) expand_window(a.w, masks, n0 + r, window, dense.data() + r * kWindow);
        // grad_x[i][window] (+)= sum_r g[i][n0 + r] * dense[r]: A element (p = r, row i) at g[i * N + n0 + r]
        const GemmSegment<float> segment{g + n0, dense.data()};
        broadcast_gemm<float, kWindowVectors>(a.m, &segment, 1, rows, 1, s.n, kWindow, grad_x + window * kWindow,
                                              ldx, n0 > 0);
      }
    });
  }
}

void grad_values(const NmBackwardArgs& a, const float* g, const float* xf, int64_t kp) {
  const NmShape& s = a.w.shape;
  const int64_t windows = (s.k + kWindow - 1) / kWindow;
  const int64_t tasks = (windows + kWindowsPerTask - 1) / kWindowsPerTask;
  parallel_for(tasks, a.num_threads, [&](int64_t begin, int64_t end) {
    alignas(64) float dense[kValueRows * kWindow];  // [rows][32]
    for (int64_t task = begin; task < end; ++task) {
      const int64_t w_end = std::min(windows, (task + 1) * kWindowsPerTask);
      for (int64_t n0 = 0; n0 < s.n; n0 += kValueRows) {
        const int64_t rows = std::min(kValueRows, s.n - n0);
        for (int64_t window = task * kWindowsPerTask; window < w_end; ++window) {
          // dense[r][c] = sum_i g[i][n0 + r] * xf[i][32 window + c]: A element (p = i, row r) at g[i * N + n0 + r]
          const GemmSegment<float> segment{g + n0, xf + window * kWindow};
          broadcast_gemm<float, kWindowVectors>(rows, &segment, 1, a.m, s.n, 1, kp, dense, kWindow, false);
          int64_t first, count;
          window_values(s, window, &first, &count);
          for (int64_t r = 0; r < rows; ++r) {
            const uint8_t* row = a.w.indices + (n0 + r) * s.index_bytes();
            float* out = a.grad_values + (n0 + r) * s.kept();
            for (int64_t j = first; j < first + count; ++j)
              out[j] = dense[r * kWindow + j / s.keep * s.group + nm_position(row, s.index_bytes(), j, s.bits()) -
                             window * kWindow];
          }
        }
      }
    }
  });
}

}  // namespace

void nm_backward_kernel(const NmBackwardArgs& a) {
  const NmShape& s = a.w.shape;
  const int64_t kp = round_up(s.k, kWindow);
  std::vector<float> g(static_cast<size_t>(a.m * s.n));  // [M][N] fp32
  parallel_for(a.m, a.num_threads, [&](int64_t begin, int64_t end) {
    float_rows(a.grad_y, a.grad_stride, a.grad_dtype, false, begin, end, s.n, s.n, g.data());
  });
  if (a.grad_x != nullptr) {
    const bool padded = kp != s.k;
    std::vector<float> staged(padded ? static_cast<size_t>(a.m * kp) : 0);
    float* out = padded ? staged.data() : a.grad_x;
    grad_input(a, g.data(), out, kp);
    if (padded)
      for (int64_t i = 0; i < a.m; ++i) std::memcpy(a.grad_x + i * s.k, out + i * kp, s.k * sizeof(float));
  }
  if (a.grad_values != nullptr) {
    std::vector<float> xf(static_cast<size_t>(a.m * kp));  // [M][kp], bf16-rounded for bf16 values
    parallel_for(a.m, a.num_threads, [&](int64_t begin, int64_t end) {
      float_rows(a.x, a.x_stride, a.x_dtype, a.w.dtype == NmValues::BFloat16, begin, end, s.k, kp, xf.data());
    });
    grad_values(a, g.data(), xf.data(), kp);
  }
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
