// torch.quantile(x, q) (linear interpolation) of a float32 vector by exact selection instead of a sort,
// bit-exact with torch: the rank q·(n-1) is computed in float32 (so it loses its fraction above 2^22),
// lo/hi are its floor and ceil, and the value is torch's two-sided lerp(v_lo, v_hi, rank - lo). The
// gradient of the quantile goes to the elements at sorted positions lo and hi with weights (1-w, w);
// among equal values, the element of sorted position p is taken to be the (p - #smaller)-th occurrence
// in x (a stable order; torch's own tie order is unspecified).
//
// Method: a histogram over bins that are monotone in the value (so every element of a lower bin is
// smaller than every element of a higher one) locates the bin of each wanted sorted position; one more
// pass gathers those few bins (values and flat indices, in flat order), and std::nth_element runs on
// them only. Two streaming passes over x instead of a selection over all of it. Torch-free, SIMD-free.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace apt_fast {

struct QuantilePick {
  float value = 0.0f;      // the quantile
  float weight = 0.0f;     // w = rank - lo
  int64_t lo_index = 0;    // flat index in x of the sorted-position-lo element
  int64_t hi_index = 0;    // ... and of the sorted-position-hi element
};

namespace quantile_detail {

struct Rank {
  int64_t lo, hi;
  float weight;
};

inline Rank rank_of(float q, int64_t n) {
  const float rank = q * static_cast<float>(n - 1);
  const int64_t lo = static_cast<int64_t>(rank);  // rank >= 0: truncation is floor
  return Rank{lo, static_cast<int64_t>(std::ceil(rank)), rank - static_cast<float>(lo)};
}

inline float lerp(float lo, float hi, float w) {
  return w < 0.5f ? lo + w * (hi - lo) : hi - (hi - lo) * (1.0f - w);
}

// Bins over [lo, hi] (the range of the finite values), monotone in the value; ±inf go to the end bins.
struct Bins {
  static constexpr int kCount = 4096;
  float lo, hi, scale;
  Bins(float lo_, float hi_) : lo(lo_), hi(hi_), scale(hi_ > lo_ ? (kCount - 1) / (hi_ - lo_) : 0.0f) {}
  int of(float x) const {
    if (!(x < hi)) return kCount - 1;  // x >= hi, +inf
    if (!(x > lo)) return 0;           // x <= lo, -inf
    return static_cast<int>(std::min((x - lo) * scale, kCount - 1.0f));
  }
};

// Element of sorted position `position` among the gathered bins (values in flat order, with indices).
struct Gathered {
  std::vector<float> values;
  std::vector<int64_t> indices;
  int64_t below = 0;  // elements of x in lower bins

  // The value at sorted position `position` of x and the flat index of that element (stable order).
  std::pair<float, int64_t> at(int64_t position, std::vector<float>& work) const {
    work.assign(values.begin(), values.end());
    const int64_t local = position - below;
    std::nth_element(work.begin(), work.begin() + local, work.end());
    const float v = work[local];
    int64_t occurrence = local - std::count_if(values.begin(), values.end(), [v](float u) { return u < v; });
    for (size_t i = 0; i < values.size(); ++i)
      if (values[i] == v && occurrence-- == 0) return {v, indices[i]};
    return {v, 0};  // unreachable
  }
};

}  // namespace quantile_detail

// The quantiles q_low <= q_high of x[0, n) (n >= 1, no NaN: torch.quantile would return NaN); lo <= hi bound
// the finite values of x.
inline void select_quantiles(const float* x, int64_t n, float q_low, float q_high, float lo, float hi,
                             QuantilePick* low, QuantilePick* high) {
  using namespace quantile_detail;
  const Rank ranks[2] = {rank_of(q_low, n), rank_of(q_high, n)};
  QuantilePick* picks[2] = {low, high};
  const Bins bins(lo, hi);
  std::vector<int64_t> count(Bins::kCount + 1, 0);
  for (int64_t i = 0; i < n; ++i) ++count[bins.of(x[i]) + 1];
  for (int b = 0; b < Bins::kCount; ++b) count[b + 1] += count[b];  // count[b] = elements in bins < b
  const int64_t positions[4] = {ranks[0].lo, ranks[0].hi, ranks[1].lo, ranks[1].hi};
  std::vector<int> wanted;  // the distinct bins holding a wanted position
  int slot[4];
  for (int i = 0; i < 4; ++i) {
    const int bin = static_cast<int>(std::upper_bound(count.begin(), count.end(), positions[i]) - count.begin()) - 1;
    const auto found = std::find(wanted.begin(), wanted.end(), bin);
    slot[i] = static_cast<int>(found - wanted.begin());
    if (found == wanted.end()) wanted.push_back(bin);
  }
  std::vector<Gathered> gathered(wanted.size());
  for (size_t j = 0; j < wanted.size(); ++j) gathered[j].below = count[wanted[j]];
  for (int64_t i = 0; i < n; ++i) {
    const int bin = bins.of(x[i]);
    for (size_t j = 0; j < wanted.size(); ++j)
      if (bin == wanted[j]) gathered[j].values.push_back(x[i]), gathered[j].indices.push_back(i);
  }
  std::vector<float> work;
  for (int i = 0; i < 2; ++i) {
    const auto v_lo = gathered[slot[2 * i]].at(positions[2 * i], work);
    const auto v_hi = ranks[i].hi == ranks[i].lo ? v_lo : gathered[slot[2 * i + 1]].at(positions[2 * i + 1], work);
    *picks[i] = QuantilePick{lerp(v_lo.first, v_hi.first, ranks[i].weight), ranks[i].weight, v_lo.second,
                             v_hi.second};
  }
}

}  // namespace apt_fast
