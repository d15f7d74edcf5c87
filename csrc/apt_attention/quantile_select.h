// torch.quantile(x, q) (linear interpolation) of a float32 vector by exact selection instead of a sort,
// bit-exact with torch: the rank q·(n-1) is computed in float32 (so it loses its fraction above 2^22),
// lo/hi are its floor and ceil, and the value is torch's two-sided lerp(v_lo, v_hi, rank - lo). The
// gradient of the quantile goes to the elements at sorted positions lo and hi with weights (1-w, w);
// among equal values, the element of sorted position p is taken to be the (p - #smaller)-th occurrence
// in x (a stable order; torch's own tie order is unspecified).
//
// Method: every element gets a bin that is monotone in the value (so every element of a lower bin is
// smaller than every element of a higher one), in a branch-free loop the compiler vectorises; a
// histogram of the bins locates the bin of each wanted sorted position; one more pass gathers those few
// bins (values and flat indices, in flat order), and std::nth_element runs on them only. Torch-free.
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
// bin[i] for every x[i] (no NaN), without branches.
constexpr int kBinCount = 4096;
inline void bin_all(const float* x, int64_t n, float lo, float hi, uint16_t* bin) {
  const float top = kBinCount - 1.0f;
  if (!(hi > lo)) {  // one finite value: it (and -inf) in the first bin, +inf in the last
    for (int64_t i = 0; i < n; ++i) bin[i] = x[i] > hi ? kBinCount - 1 : 0;
    return;
  }
  const float scale = top / (hi - lo);
  for (int64_t i = 0; i < n; ++i) {
    const float t = (x[i] - lo) * scale;  // ±inf give ±inf, clamped into the end bins
    bin[i] = static_cast<uint16_t>(std::min(std::max(t, 0.0f), top));
  }
}

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
  std::vector<uint16_t> bin(n);
  bin_all(x, n, lo, hi, bin.data());
  std::vector<int64_t> count(kBinCount + 1, 0);
  for (int64_t i = 0; i < n; ++i) ++count[bin[i] + 1];
  for (int b = 0; b < kBinCount; ++b) count[b + 1] += count[b];  // count[b] = elements in bins < b
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
  std::vector<int8_t> slot_of_bin(kBinCount, -1);
  for (size_t j = 0; j < wanted.size(); ++j) gathered[j].below = count[wanted[j]], slot_of_bin[wanted[j]] = j;
  for (int64_t i = 0; i < n; ++i) {
    const int j = slot_of_bin[bin[i]];
    if (j >= 0) gathered[j].values.push_back(x[i]), gathered[j].indices.push_back(i);
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
