// The layer-fusion kernels, written once against Vec and compiled once per SIMD level.
//
// add_layer_norm works row by row: x + residual is summed in registers (two sweeps: mean, then the centred
// variance), then normalised and written. Its backward recomputes x + residual, takes the two row means of the
// LayerNorm gradient in one sweep and writes the gradient in a second. bias_gelu is one sweep per row, the exact
// GELU x Phi(x) with Phi from erfc (below). The weight and bias gradients are summed per chunk of rows (a fixed
// number of chunks, so the result does not depend on the thread count), then the chunks in order.
#include <algorithm>
#include <cmath>
#include <vector>

#include "layer_fusions/layer_fusions.h"
#include "common/parallel_for.h"
#include "common/simd/vec.h"

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

constexpr int64_t kMaxChunks = 32;  // row chunks of the weight/bias gradient sums

template <class Body>
inline void for_each_block(int64_t width, Body&& body) {
  int64_t j = 0;
  for (; j + Vec::size <= width; j += Vec::size) body(j, Vec::size);
  if (j < width) body(j, static_cast<int>(width - j));
}

template <class T>
inline Vec load_block(const T* p, int n) {
  return n == Vec::size ? Vec::load(p) : Vec::load_partial(p, n, 0.0f);
}

template <class T>
inline void store_block(T* p, int n, Vec v) {
  if (n == Vec::size) v.store(p); else v.store_partial(p, n);
}

inline Vec zero_tail(Vec v, int n) {
  return n == Vec::size ? v : Vec::select(Vec::iota() < Vec(static_cast<float>(n)), v, Vec(0.0f));
}

// erfc(a) for a >= 0 to a few float32 ulps relative (so Phi(x) stays accurate far into the negative tail, where
// 1 + erf(x) would cancel), and exp(-a^2), which the GELU backward reuses:
//   erfc(a) = exp(-a^2) t P(t),  t = 1 / (1 + a/2),
// P a degree-8 least-squares fit in float64 of e^{a^2} erfc(a) / t on a in [0, 10] (3e-7 relative evaluated in
// float32). a^2 = hi + lo is passed split exactly, so exp(-a^2) keeps float32 accuracy where a^2 is large.
struct Erfc {
  Vec erfc;
  Vec gauss;  // exp(-a^2)
};

inline Erfc erfc_nonnegative(Vec a, Vec hi, Vec lo) {
  const Vec zero(0.0f), one(1.0f), limit(10.0f);
  Vec gauss = exp(zero - hi) * (one - lo);
  gauss = Vec::select(a < limit, gauss, zero);  // below float32's range anyway; keeps inf inputs NaN-free
  Vec t = one / Vec::fmadd(Vec::min(a, limit), Vec(0.5f), one);
  Vec p(-6.000423059e-02f);
  p = Vec::fmadd(p, t, Vec(2.887564898e-01f));
  p = Vec::fmadd(p, t, Vec(-4.951092005e-01f));
  p = Vec::fmadd(p, t, Vec(2.863076627e-01f));
  p = Vec::fmadd(p, t, Vec(-3.177852556e-02f));
  p = Vec::fmadd(p, t, Vec(2.046580315e-01f));
  p = Vec::fmadd(p, t, Vec(2.426557392e-01f));
  p = Vec::fmadd(p, t, Vec(2.824302912e-01f));
  p = Vec::fmadd(p, t, Vec(2.820836306e-01f));
  return {gauss * t * p, gauss};
}

struct Gelu {
  Vec cdf;    // Phi(x)
  Vec gauss;  // exp(-x^2 / 2)
};

inline Gelu gelu_parts(Vec x) {
  const Vec zero(0.0f), half(0.5f);
  Vec square = x * x;
  Vec square_lo = Vec::fmadd(x, x, zero - square);  // x^2 = square + square_lo exactly
  Vec a = Vec::max(x, zero - x) * Vec(0.707106781186547524f);  // |x| / sqrt(2)
  Erfc e = erfc_nonnegative(a, square * half, square_lo * half);
  Vec tail = half * e.erfc;  // Phi(-|x|)
  return {Vec::select(x < zero, tail, Vec(1.0f) - tail), e.gauss};
}

// Splits [0, rows) into a fixed number of chunks and calls body(chunk, begin, end) for each, in parallel.
template <class Body>
void for_each_chunk(int64_t rows, int num_threads, Body&& body) {
  int64_t chunks = std::min(rows, kMaxChunks);
  parallel_for(chunks, num_threads, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) body(c, rows * c / chunks, rows * (c + 1) / chunks);
  });
}

// out[j] = sum over chunks of partial[chunk][j], the chunks in order.
void sum_chunks(const std::vector<float>& partial, int64_t chunks, int64_t stride, int64_t offset, int64_t width,
                float* out) {
  std::fill(out, out + width, 0.0f);
  for (int64_t c = 0; c < chunks; ++c) {
    const float* row = partial.data() + c * stride + offset;
    for (int64_t j = 0; j < width; ++j) out[j] += row[j];
  }
}

// --- add_layer_norm ------------------------------------------------------------------------------------------

template <class T>
void norm_fwd(const AddLayerNormArgs& a) {
  const int64_t width = a.width;
  const float inv_width = 1.0f / static_cast<float>(width);
  parallel_for(a.rows, a.num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const T* x = static_cast<const T*>(a.x) + row * width;
      const T* r = static_cast<const T*>(a.residual) + row * width;
      T* out = static_cast<T*>(a.out) + row * width;
      Vec total(0.0f);
      for_each_block(width, [&](int64_t j, int n) { total = total + load_block(x + j, n) + load_block(r + j, n); });
      const float row_mean = total.reduce_add() * inv_width;
      const Vec mean(row_mean);
      Vec squares(0.0f);
      for_each_block(width, [&](int64_t j, int n) {
        Vec d = zero_tail(load_block(x + j, n) + load_block(r + j, n) - mean, n);
        squares = Vec::fmadd(d, d, squares);
      });
      float rstd = 1.0f / std::sqrt(squares.reduce_add() * inv_width + a.eps);
      Vec scale(rstd);
      for_each_block(width, [&](int64_t j, int n) {
        Vec xhat = (load_block(x + j, n) + load_block(r + j, n) - mean) * scale;
        store_block(out + j, n, Vec::fmadd(xhat, load_block(a.weight + j, n), load_block(a.bias + j, n)));
      });
      a.mean[row] = row_mean;
      a.rstd[row] = rstd;
    }
  });
}

template <class T>
void norm_bwd(const AddLayerNormArgs& a) {
  const int64_t width = a.width;
  const float inv_width = 1.0f / static_cast<float>(width);
  const int64_t chunks = std::min(a.rows, kMaxChunks);
  std::vector<float> partial(static_cast<size_t>(chunks * 2 * width), 0.0f);  // [chunks][weight | bias]
  for_each_chunk(a.rows, a.num_threads, [&](int64_t chunk, int64_t begin, int64_t end) {
    float* dweight = partial.data() + chunk * 2 * width;
    float* dbias = dweight + width;
    for (int64_t row = begin; row < end; ++row) {
      const T* x = static_cast<const T*>(a.x) + row * width;
      const T* r = static_cast<const T*>(a.residual) + row * width;
      const T* g = static_cast<const T*>(a.grad_out) + row * width;
      T* ds = static_cast<T*>(a.grad_sum) + row * width;
      const Vec mean(a.mean[row]), rstd(a.rstd[row]);
      Vec sum_wg(0.0f), sum_wg_xhat(0.0f);
      for_each_block(width, [&](int64_t j, int n) {
        Vec grad = load_block(g + j, n);
        Vec xhat = zero_tail((load_block(x + j, n) + load_block(r + j, n) - mean) * rstd, n);
        Vec wg = grad * load_block(a.weight + j, n);
        sum_wg = sum_wg + wg;
        sum_wg_xhat = Vec::fmadd(wg, xhat, sum_wg_xhat);
        store_block(dweight + j, n, Vec::fmadd(grad, xhat, load_block(dweight + j, n)));
        store_block(dbias + j, n, load_block(dbias + j, n) + grad);
      });
      Vec c1(sum_wg.reduce_add() * inv_width), c2(sum_wg_xhat.reduce_add() * inv_width);
      for_each_block(width, [&](int64_t j, int n) {
        Vec xhat = (load_block(x + j, n) + load_block(r + j, n) - mean) * rstd;
        Vec wg = load_block(g + j, n) * load_block(a.weight + j, n);
        store_block(ds + j, n, rstd * (wg - c1 - xhat * c2));
      });
    }
  });
  sum_chunks(partial, chunks, 2 * width, 0, width, a.grad_weight);
  sum_chunks(partial, chunks, 2 * width, width, width, a.grad_bias);
}

// --- bias_gelu -----------------------------------------------------------------------------------------------

template <class T>
void gelu_fwd(const BiasGeluArgs& a) {
  const int64_t width = a.width;
  parallel_for(a.rows, a.num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const T* x = static_cast<const T*>(a.x) + row * width;
      T* out = static_cast<T*>(a.out) + row * width;
      for_each_block(width, [&](int64_t j, int n) {
        Vec v = load_block(x + j, n) + load_block(a.bias + j, n);
        store_block(out + j, n, v * gelu_parts(v).cdf);
      });
    }
  });
}

template <class T>
void gelu_bwd(const BiasGeluArgs& a) {
  const int64_t width = a.width;
  const int64_t chunks = std::min(a.rows, kMaxChunks);
  const Vec inv_sqrt_2pi(0.398942280401432678f);
  std::vector<float> partial(static_cast<size_t>(chunks * width), 0.0f);  // [chunks][bias]
  for_each_chunk(a.rows, a.num_threads, [&](int64_t chunk, int64_t begin, int64_t end) {
    float* dbias = partial.data() + chunk * width;
    for (int64_t row = begin; row < end; ++row) {
      const T* x = static_cast<const T*>(a.x) + row * width;
      const T* g = static_cast<const T*>(a.grad_out) + row * width;
      T* dx = static_cast<T*>(a.grad_x) + row * width;
      for_each_block(width, [&](int64_t j, int n) {
        Vec v = load_block(x + j, n) + load_block(a.bias + j, n);
        Gelu parts = gelu_parts(v);
        Vec slope = Vec::fmadd(v * inv_sqrt_2pi, parts.gauss, parts.cdf);  // Phi(v) + v phi(v)
        Vec grad = load_block(g + j, n) * slope;
        store_block(dx + j, n, grad);
        store_block(dbias + j, n, load_block(dbias + j, n) + grad);
      });
    }
  });
  sum_chunks(partial, chunks, width, 0, width, a.grad_bias);
}

}  // namespace

void add_layer_norm_fwd(const AddLayerNormArgs& a) {
  if (a.dtype == Dtype::BFloat16) norm_fwd<uint16_t>(a); else norm_fwd<float>(a);
}

void add_layer_norm_bwd(const AddLayerNormArgs& a) {
  if (a.dtype == Dtype::BFloat16) norm_bwd<uint16_t>(a); else norm_bwd<float>(a);
}

void bias_gelu_fwd(const BiasGeluArgs& a) {
  if (a.dtype == Dtype::BFloat16) gelu_fwd<uint16_t>(a); else gelu_fwd<float>(a);
}

void bias_gelu_bwd(const BiasGeluArgs& a) {
  if (a.dtype == Dtype::BFloat16) gelu_bwd<uint16_t>(a); else gelu_bwd<float>(a);
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
