// torch.quantile(x, q) (linear interpolation) of a float32 vector by exact selection instead of a sort,
// bit-exact with torch: the rank q·(n-1) is computed in float32 (so it loses its fraction above 2^22),
// lo/hi are its floor and ceil, and the value is torch's two-sided lerp(v_lo, v_hi, rank - lo). The
// gradient of the quantile goes to the elements at sorted positions lo and hi with weights (1-w, w);
// among equal values, the element of sorted position p is taken to be the (p - #smaller)-th occurrence
// in x (a stable order; torch's own tie order is unspecified). Torch-free, SIMD-free.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace apt_fast {

struct QuantilePick {
  float value = 0.0f;      // the quantile (NaN when x holds a NaN, as torch.quantile)
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

// indices[i] = flat index of the element of sorted position positions[i] whose value is values[i]
// (stable order), for i < 4, in two passes over x.
inline void indices_of(const float* x, int64_t n, const float* values, const int64_t* positions, int64_t* indices) {
  int64_t remaining[4] = {positions[0], positions[1], positions[2], positions[3]};
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < 4; ++j) remaining[j] -= x[i] < values[j];
  for (int j = 0; j < 4; ++j) indices[j] = -1;
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < 4; ++j)
      if (x[i] == values[j] && indices[j] < 0 && remaining[j]-- == 0) indices[j] = i;
}

}  // namespace quantile_detail

// The quantiles q_low <= q_high of x[0, n) (n >= 1), using scratch[0, n) as work space.
inline void select_quantiles(const float* x, int64_t n, float q_low, float q_high, float* scratch, QuantilePick* low,
                             QuantilePick* high) {
  using namespace quantile_detail;
  const Rank rh = rank_of(q_high, n), rl = rank_of(q_low, n);
  if (std::any_of(x, x + n, [](float v) { return v != v; })) {
    low->value = high->value = std::numeric_limits<float>::quiet_NaN();
    low->weight = rl.weight, high->weight = rh.weight;
    return;
  }
  std::copy(x, x + n, scratch);
  // high: position rh.lo, then rh.hi is the smallest of what lies above it.
  std::nth_element(scratch, scratch + rh.lo, scratch + n);
  const float h_lo = scratch[rh.lo];
  const float h_hi = rh.hi == rh.lo ? h_lo : *std::min_element(scratch + rh.lo + 1, scratch + n);
  // low: within the part below rh.lo (everything there is <= h_lo).
  float l_lo = h_lo;
  if (rl.lo < rh.lo) {
    std::nth_element(scratch, scratch + rl.lo, scratch + rh.lo);
    l_lo = scratch[rl.lo];
  }
  float l_hi = l_lo;
  if (rl.hi != rl.lo) {
    l_hi = h_lo;
    if (rl.hi < rh.lo) l_hi = std::min(l_hi, *std::min_element(scratch + rl.lo + 1, scratch + rh.lo));
    if (rl.hi > rh.lo) l_hi = h_hi;  // rl.hi == rh.hi: n small
  }
  const float values[4] = {l_lo, l_hi, h_lo, h_hi};
  const int64_t positions[4] = {rl.lo, rl.hi, rh.lo, rh.hi};
  int64_t indices[4];
  indices_of(x, n, values, positions, indices);
  *low = QuantilePick{lerp(l_lo, l_hi, rl.weight), rl.weight, indices[0], indices[1]};
  *high = QuantilePick{lerp(h_lo, h_hi, rh.weight), rh.weight, indices[2], indices[3]};
}

}  // namespace apt_fast
