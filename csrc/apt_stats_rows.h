// The row-local part of APT's statistics stage (apt_stats.h), written once against Vec (include after
// simd/vec.h): from one row of M, the maps T3-T8 that the forward reduces and the backward needs again
// (it recomputes them rather than saving them). All buffers are one row of S floats.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "attention_tiles.h"
#include "sr_mlp_table.h"

namespace apt_fast {
namespace APT_SIMD_NS {

// In place: x <- softmax(x) over n entries (torch's order: exp(x - max), then times 1 / sum).
inline void softmax_in_place(float* x, int n) {
  const float shift = row_max(x, n);
  const Vec inv(1.0f / exp_shifted(x, n, shift));
  for (int c = 0; c < n; c += Vec::size) {
    const int w = std::min(Vec::size, n - c);
    store_n(x + c, w, load_n(x + c, w) * inv);
  }
}

// Σ x[c] y[c] over n entries.
inline float dot(const float* x, const float* y, int n) {
  Vec acc(0.0f);
  for (int c = 0; c < n; c += Vec::size) {
    const int w = std::min(Vec::size, n - c);
    acc = Vec::fmadd(load_n(x + c, w), load_n(y + c, w), acc);
  }
  return acc.reduce_add();
}

// The T3-T8 maps of one row.
struct StatsRow {
  std::vector<float> p, entropy, fm, gate;  // P, E, Fm, G = sigmoid(τ)
  std::vector<float> x, pw, tau_pre, keep;  // X, pw(X), 1 + 2.5 clamp(pw, ±5), 0 where the mask forces τ = 1
  std::vector<int> segment;                 // sr-MLP segment of X

  explicit StatsRow(int64_t n)
      : p(n), entropy(n), fm(n), gate(n), x(n), pw(n), tau_pre(n), keep(n), segment(n) {}

  // m: the row of M; mask: the row of mask[b, 0] with stride mask_stride, or null.
  void compute(const float* m, const float* mask, int64_t mask_stride, int n, const SrMlpTable& table,
               float scale) {
    for (int c = 0; c < n; c += Vec::size) {  // T3 and P's logits
      const int w = std::min(Vec::size, n - c);
      const Vec mv = load_n(m + c, w);
      store_n(x.data() + c, w, clamp(mv, -8.0f, 8.0f) * Vec(scale));
      store_n(p.data() + c, w, clamp(mv, -10.0f, 10.0f));
    }
    for (int c = 0; c < n; ++c) {  // T4: the sr-MLP, one segment lookup per element
      const int s = table.segment(x[c]);
      segment[c] = s;
      pw[c] = table.value(x[c], s);
    }
    for (int c = 0; c < n; c += Vec::size) {  // T5 before the mask; keep = 0 where mask[b, 0] != 0
      const int w = std::min(Vec::size, n - c);
      store_n(tau_pre.data() + c, w, Vec(1.0f) + Vec(0.05f) * (Vec(50.0f) * clamp(load_n(pw.data() + c, w), -5.0f, 5.0f)));
      if (mask == nullptr) {
        store_n(keep.data() + c, w, Vec(1.0f));
        continue;
      }
      const float* mrow = mask + c * mask_stride;
      float gathered[Vec::size];
      if (mask_stride != 1)
        for (int i = 0; i < w; ++i) gathered[i] = mrow[i * mask_stride];
      const Vec mv = load_n(mask_stride == 1 ? mrow : gathered, w);
      store_n(keep.data() + c, w, Vec::select(mv == Vec(0.0f), Vec(1.0f), Vec(0.0f)));
    }
    softmax_in_place(p.data(), n);  // T7
    for (int c = 0; c < n; c += Vec::size) {
      const int w = std::min(Vec::size, n - c);
      const Vec pv = load_n(p.data() + c, w);
      const Vec e = Vec(0.0f) - pv * log(pv + Vec(1e-6f));
      store_n(entropy.data() + c, w, e);
      store_n(fm.data() + c, w, Vec(3.0f) * e);
      const Vec tau = Vec::select(load_n(keep.data() + c, w) == Vec(0.0f), Vec(1.0f),
                                  clamp(load_n(tau_pre.data() + c, w), 0.5f, 1.5f));
      store_n(gate.data() + c, w, Vec(1.0f) / (Vec(1.0f) + exp(Vec(0.0f) - tau)));  // T6
    }
    softmax_in_place(fm.data(), n);
  }
};

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
