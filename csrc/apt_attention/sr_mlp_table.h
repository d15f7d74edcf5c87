// APT's sr-MLP (APT_SPEC.md §2.2 T4) as the piecewise-linear function of one scalar that it is:
//
//   pw(X) = Σ_k w2_k relu(clamp(w1_k X + b1_k, -5, 5)) + b2 = Σ_k w2_k clamp(w1_k X + b1_k, 0, 5) + b2.
//
// Unit k bends where w1_k X + b1_k crosses 0 or 5, so pw is linear between at most 2 Hd sorted knots.
// The table is built once per call (in double) and holds, per segment, the slope and intercept, and
// which units are active (0 < z <= 5, the gradient convention of relu(clamp(z, -5, 5))) or saturated
// (z > 5). Backward needs per segment only G0 = Σ g and G1 = Σ g·X over the elements that fell in it:
//   dw2_k = Σ_σ active (w1_k G1_σ + b1_k G0_σ) + 5 saturated G0_σ,  dw1_k = w2_k Σ_σ active G1_σ,
//   db1_k = w2_k Σ_σ active G0_σ,  db2 = Σ_σ G0_σ.
// Torch-free and SIMD-free (StatsRow evaluates it with Vec); a segment lookup is a bin table over the range
// X can take plus a short walk.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace apt_fast {

class SrMlpTable {
 public:
  // w1, b1, w2: [hidden]; X is known to lie in [-x_max, x_max].
  SrMlpTable(const float* w1, const float* b1, const float* w2, float b2, int64_t hidden, float x_max)
      : w1_(w1, w1 + hidden), b1_(b1, b1 + hidden), w2_(w2, w2 + hidden) {
    std::vector<double> knots;
    for (int64_t k = 0; k < hidden; ++k) {
      if (w1[k] == 0.0f) continue;  // never bends
      knots.push_back((0.0 - b1[k]) / w1[k]);
      knots.push_back((5.0 - b1[k]) / w1[k]);
    }
    std::sort(knots.begin(), knots.end());
    // Knots equal in float32 bound no float X between them: keep one (units with equal biases, e.g. the
    // zero-initialised ones, all bend at X = 0).
    knots.erase(std::unique(knots.begin(), knots.end(),
                            [](double u, double v) { return static_cast<float>(u) == static_cast<float>(v); }),
                knots.end());
    const int64_t count = static_cast<int64_t>(knots.size());
    knots_.resize(count);
    for (int64_t i = 0; i < count; ++i) knots_[i] = static_cast<float>(knots[i]);
    // One X strictly inside each of the count + 1 segments (between float knots), and the unit states there.
    active_.assign((count + 1) * hidden, 0);
    saturated_.assign((count + 1) * hidden, 0);
    slope_.resize(count + 1);
    intercept_.resize(count + 1);
    for (int64_t s = 0; s <= count; ++s) {
      const double rep = count == 0 ? 0.0
                         : s == 0   ? knots_[0] - 1.0
                         : s == count ? knots_[count - 1] + 1.0
                                      : 0.5 * (static_cast<double>(knots_[s - 1]) + knots_[s]);
      double slope = 0.0, intercept = b2;
      for (int64_t k = 0; k < hidden; ++k) {
        const double z = rep * w1[k] + b1[k];
        const bool on = z > 0.0 && z <= 5.0, full = z > 5.0;
        active_[s * hidden + k] = on;
        saturated_[s * hidden + k] = full;
        if (on) {
          slope += static_cast<double>(w1[k]) * w2[k];
          intercept += static_cast<double>(b1[k]) * w2[k];
        }
        if (full) intercept += 5.0 * w2[k];
      }
      slope_[s] = static_cast<float>(slope);
      intercept_[s] = static_cast<float>(intercept);
    }
    build_bins(x_max);
  }

  int64_t segments() const { return static_cast<int64_t>(slope_.size()); }

  // Segment lookup (the segment of x is the number of knots <= x; NaN: segment 0): bin i of
  // [-x_max, x_max] holds its segment (>= 0) when no knot is near it; one with a knot holds -1 - (a
  // segment at or below x's), and walk() finishes. x outside the range or NaN falls in an end bin, which
  // always walks.
  static constexpr int kBins = 1024;
  const float* bin_segments() const { return bin_segment_.data(); }  // [kBins], integral floats
  float bin_low() const { return lo_; }
  float inv_bin_width() const { return inv_width_; }
  int walk(int start, float x) const {
    const int count = static_cast<int>(knots_.size());
    int s = start;
    if (x == x)
      while (s < count && knots_[s] <= x) ++s;
    return s;
  }
  const float* slopes() const { return slope_.data(); }          // [segments()]
  const float* intercepts() const { return intercept_.data(); }  // [segments()]


  // Gradients of w1, b1, w2 and b2 from the per-segment sums g0 = Σ g, g1 = Σ g·X ([segments()] each).
  void weight_grads(const double* g0, const double* g1, float* dw1, float* db1, float* dw2, float* db2) const {
    const int64_t hidden = static_cast<int64_t>(w1_.size());
    double total = 0.0;
    for (int64_t s = 0; s < segments(); ++s) total += g0[s];
    for (int64_t k = 0; k < hidden; ++k) {
      double active_g0 = 0.0, active_g1 = 0.0, saturated_g0 = 0.0;
      for (int64_t s = 0; s < segments(); ++s) {
        if (active_[s * hidden + k]) active_g0 += g0[s], active_g1 += g1[s];
        if (saturated_[s * hidden + k]) saturated_g0 += g0[s];
      }
      dw2[k] = static_cast<float>(w1_[k] * active_g1 + b1_[k] * active_g0 + 5.0 * saturated_g0);
      dw1[k] = static_cast<float>(w2_[k] * active_g1);
      db1[k] = static_cast<float>(w2_[k] * active_g0);
    }
    *db2 = static_cast<float>(total);
  }

 private:
  // bin_segment_[i]: see bin_segments(). Bins are widened by a margin when looking for knots, so that an x
  // rounded into a neighbouring bin is still resolved exactly; X outside [-x_max, x_max] walks from 0.
  void build_bins(float x_max) {
    lo_ = -x_max;
    inv_width_ = x_max > 0.0f ? kBins / (2.0f * x_max) : 0.0f;
    const double width = 2.0 * x_max / kBins, margin = 0.01 * width + 1e-6 * x_max;
    bin_segment_.resize(kBins);
    for (int i = 0; i < kBins; ++i) {
      const double left = lo_ + i * width - margin, right = lo_ + (i + 1) * width + margin;
      const auto first = std::lower_bound(knots_.begin(), knots_.end(), static_cast<float>(left));
      const bool clear = (first == knots_.end() || *first > right) && i > 0 && i < kBins - 1;
      const int below = static_cast<int>(first - knots_.begin());
      bin_segment_[i] = static_cast<float>(clear ? below : -1 - (i == 0 ? 0 : below));
    }
  }

  std::vector<double> w1_, b1_, w2_;
  std::vector<float> knots_, slope_, intercept_;
  std::vector<uint8_t> active_, saturated_;  // [segments, hidden]
  std::vector<float> bin_segment_;
  float lo_ = 0.0f, inv_width_ = 0.0f;
};

}  // namespace apt_fast
