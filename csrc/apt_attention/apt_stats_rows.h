// The row-local part of APT's statistics stage (apt_stats.h), written once against Vec (include after
// simd/vec.h): from one row of M, the maps T3-T8 that the forward reduces and the backward needs again
// (it recomputes them rather than saving them). All buffers are one row of S floats.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "flash_attention/attention_tiles.h"
#include "apt_attention/sr_mlp_table.h"

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
  std::vector<float> segment;               // sr-MLP segment of X (integral)

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
    sr_mlp(table, n);  // T4
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

 private:
  // segment and pw = the sr-MLP of X: a gather from the bin table, a scalar walk for the lanes whose bin
  // holds a knot, then gathers of the segment's slope and intercept.
  void sr_mlp(const SrMlpTable& table, int n) {
    const Vec low(table.bin_low()), inv_width(table.inv_bin_width()), top(SrMlpTable::kBins - 1.0f);
    for (int c = 0; c < n; c += Vec::size) {
      const int w = std::min(Vec::size, n - c);
      const Vec xv = load_n(x.data() + c, w);
      const Vec bin = Vec::min(Vec::max((xv - low) * inv_width, Vec(0.0f)), top);  // NaN -> bin 0 (max)
      Vec s = Vec::gather(table.bin_segments(), bin);
      if (Vec::any(s < Vec(0.0f))) {
        float lanes[Vec::size];
        s.store(lanes);
        for (int i = 0; i < w; ++i)
          if (lanes[i] < 0.0f) lanes[i] = static_cast<float>(table.walk(static_cast<int>(-1.0f - lanes[i]), x[c + i]));
        s = Vec::load(lanes);
      }
      if (w < Vec::size) s = Vec::select(Vec::iota() < Vec(static_cast<float>(w)), s, Vec(0.0f));  // tail: segment 0
      store_n(segment.data() + c, w, s);
      store_n(pw.data() + c, w, Vec::gather(table.slopes(), s) * xv + Vec::gather(table.intercepts(), s));
    }
  }
};

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
