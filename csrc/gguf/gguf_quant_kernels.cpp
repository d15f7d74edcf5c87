// The GGUF block quantizers, written once against Vec and compiled once per SIMD level.
//
// Each block follows gguf-py's reference step by step in float32 (no FMA contraction, so every
// product and sum rounds as numpy's does):
//   Q8_0:       d = amax / 127,                     q = round_half_away(x * id)
//   Q4_0, Q5_0: d = x[first argmax |x|] / -2^(b-1), q = min(trunc(x * id + 2^(b-1) + 0.5), 2^b - 1)
//   Q4_1, Q5_1: d = (max - min) / (2^b - 1),        q = min(trunc((x - min) * id + 0.5), 2^b - 1)
// with id = (d == 0 ? 0 : 1 / d); d (and min) are stored as float16.
//
// Blocks go in groups of Vec::size: first every block's statistics (lane-wise over the block, then
// gathered into one Vec per statistic by lanes_max: lane b for block b), then d and id for the whole
// group in one vector division each, then the encoding. The float steps run on Vec, the integer steps
// on gguf_quant_simd.h's Lanes. Chunks of groups are shared out over the threads as they come free.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "gguf/gguf_quant_simd.h"
#include "common/parallel_for.h"

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

constexpr int kBlock = static_cast<int>(kGgufBlockSize);
constexpr int kVecs = kBlock / Vec::size;
static_assert(kBlock % Vec::size == 0 && kVecs % 2 == 0, "a block must be an even number of whole vectors");
constexpr int64_t kGroupsPerChunk = (1 << 16) / (kBlock * Vec::size);  // work items of 64 Ki floats (256 KiB)

inline void store_fp16(uint8_t* dst, float x) {
  const uint16_t bits = fp16_bits(x);
  std::memcpy(dst, &bits, sizeof bits);
}

// Lane-wise extremes of one block: x [32] -> lo, hi (Vec::size lanes each, reduced over the block's Vecs).
inline void block_lanes_min_max(const float* x, Vec* lo, Vec* hi) {
  Vec vmin = Vec::load(x), vmax = vmin;
  for (int k = 1; k < kVecs; ++k) {
    const Vec v = Vec::load(x + k * Vec::size);
    vmin = Vec::min(vmin, v);
    vmax = Vec::max(vmax, v);
  }
  *lo = vmin;
  *hi = vmax;
}

inline void block_min_max(const float* x, float* lo, float* hi) {  // x [32]
  Vec vmin, vmax;
  block_lanes_min_max(x, &vmin, &vmax);
  *hi = vmax.reduce_max();
  *lo = -(vmin * Vec(-1.0f)).reduce_max();  // exact sign flips: min = -max(-x)
}

// Q8_0: statistic amax = max |x|; d = amax / 127; 32 int8 levels after d.
struct Q8_0 {
  static constexpr int kTypeSize = 34;
  static constexpr float kDivisor = 127.0f;
  static constexpr bool kWithMin = false;

  static void group_stats(const float* x, int count, float* top, float*) {  // x [count * 32] -> top [count]
    Vec amax[Vec::size];
    for (int b = 0; b < Vec::size; ++b) {
      if (b >= count) {
        amax[b] = Vec(0.0f);
        continue;
      }
      const float* block = x + b * kBlock;
      amax[b] = abs_bits(Vec::load(block));
      for (int k = 1; k < kVecs; ++k) amax[b] = Vec::max(amax[b], abs_bits(Vec::load(block + k * Vec::size)));
    }
    lanes_max(amax).store(top);
  }

  static void encode(const float* x, float d, float, float id, uint8_t* out) {  // x [32] -> out [34]
    store_fp16(out, d);
    for (int k = 0; k < kVecs; ++k) {
      const Vec v = Vec::load(x + k * Vec::size) * Vec(id);
      const Vec a = abs_bits(v);
      Vec r = Vec::round(a);  // ties to even; a tie it rounded down goes up (a - r is exact)
      r = Vec::select(a - r == Vec(0.5f), r + Vec(1.0f), r);
      store_low_bytes(lanes_trunc(with_sign_of(r, v)), out + 2 + k * Vec::size);
    }
  }
};

// Q4_0 / Q5_0 (WithMin false: statistic x[argmax |x|], d = that / -2^(Bits-1)) and
// Q4_1 / Q5_1 (WithMin true: statistics max and min, d = (max - min) / (2^Bits - 1)).
template <int Bits, bool WithMin>
struct QN {
  static constexpr int kTop = (1 << Bits) - 1;
  static constexpr int kTypeSize = 2 + (WithMin ? 2 : 0) + (Bits == 5 ? 4 : 0) + kBlock / 2;
  static constexpr float kDivisor = WithMin ? static_cast<float>(kTop) : -static_cast<float>((kTop + 1) / 2);
  static constexpr bool kWithMin = WithMin;

  // x [count * 32] -> top [count] (and low [count] with a min)
  static void group_stats(const float* x, int count, float* top, float* low) {
    Vec lo[Vec::size], hi[Vec::size];
    for (int b = 0; b < Vec::size; ++b) {
      if (b < count) {
        block_lanes_min_max(x + b * kBlock, &lo[b], &hi[b]);
      } else {
        lo[b] = hi[b] = Vec(0.0f);
      }
    }
    alignas(64) float his[Vec::size], los[Vec::size];
    lanes_max(hi).store(his);
    lanes_min(lo).store(los);
    if (WithMin) {
      for (int b = 0; b < count; ++b) {
        top[b] = his[b];
        low[b] = los[b];
        // A zero max or min is +0 or -0 by the order of the reduction (it reaches the stored bytes):
        // such blocks take block_min_max's order, the one this quantizer has always used.
        if (his[b] == 0.0f || los[b] == 0.0f) block_min_max(x + b * kBlock, &low[b], &top[b]);
      }
      return;
    }
    for (int b = 0; b < count; ++b) {
      if (his[b] != -los[b]) {  // x[argmax |x|] is the max or the min, whichever is larger in magnitude
        top[b] = his[b] > -los[b] ? his[b] : los[b];
      } else {  // a tie between +a and -a (or an all-zero block): numpy's argmax takes the first
        const float* block = x + b * kBlock;
        int first = 0;
        while (std::fabs(block[first]) != his[b]) ++first;
        top[b] = block[first];
      }
    }
  }

  static void encode(const float* x, float d, float lo, float id, uint8_t* out) {  // x [32] -> out [kTypeSize]
    const Vec offset(WithMin ? 0.5f : (kTop + 1) / 2 + 0.5f);
    auto levels = [&](int k) {  // the k-th Vec of the block as 32-bit levels, rounded as numpy's expression
      Vec v = Vec::load(x + k * Vec::size);
      if (WithMin) v = v - Vec(lo);
      return clamp_level(lanes_trunc(v * Vec(id) + offset), kTop);
    };
    store_fp16(out, d);
    out += 2;
    if (WithMin) {
      store_fp16(out, lo);
      out += 2;
    }
    uint8_t* qs = out + (Bits == 5 ? 4 : 0);
    uint32_t qh = 0;
    constexpr int kHalf = kVecs / 2;  // element j pairs with j + 16, i.e. Vec k with Vec k + kHalf
    for (int k = 0; k < kHalf; ++k) {
      const Lanes low = levels(k), high = levels(k + kHalf);
      store_nibbles(low, high, qs + k * Vec::size);
      if (Bits == 5) qh |= bit4_mask(low) << (k * Vec::size) | bit4_mask(high) << (kBlock / 2 + k * Vec::size);
    }
    if (Bits == 5) std::memcpy(out, &qh, sizeof qh);  // little-endian, as ggml stores it
  }
};

// Up to Vec::size blocks: statistics, then d and id for all of them at once, then the encoding.
template <class Format>
void quantize_group(const float* x, int count, uint8_t* out) {  // x [count * 32] -> out [count * kTypeSize]
  alignas(64) float top[Vec::size] = {}, low[Vec::size] = {}, d[Vec::size], id[Vec::size];
  Format::group_stats(x, count, top, low);
  const Vec numerator = Format::kWithMin ? Vec::load(top) - Vec::load(low) : Vec::load(top);
  const Vec scale = numerator / Vec(Format::kDivisor);
  scale.store(d);
  Vec::select(scale == Vec(0.0f), Vec(0.0f), Vec(1.0f) / scale).store(id);
  for (int b = 0; b < count; ++b) Format::encode(x + b * kBlock, d[b], low[b], id[b], out + b * Format::kTypeSize);
}

template <class Format>
void quantize_all(const float* src, int64_t n_blocks, uint8_t* dst, int num_threads) {
  const int64_t groups = (n_blocks + Vec::size - 1) / Vec::size;
  parallel_for_chunks(groups, kGroupsPerChunk, num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      const int64_t first = g * Vec::size;
      const int count = static_cast<int>(std::min<int64_t>(Vec::size, n_blocks - first));
      quantize_group<Format>(src + first * kBlock, count, dst + first * Format::kTypeSize);
    }
  });
}

}  // namespace

void gguf_quantize_blocks(const float* src, int64_t n_blocks, GgufQuantType type, uint8_t* dst, int num_threads) {
  switch (type) {
    case GgufQuantType::Q8_0: return quantize_all<Q8_0>(src, n_blocks, dst, num_threads);
    case GgufQuantType::Q4_0: return quantize_all<QN<4, false>>(src, n_blocks, dst, num_threads);
    case GgufQuantType::Q4_1: return quantize_all<QN<4, true>>(src, n_blocks, dst, num_threads);
    case GgufQuantType::Q5_0: return quantize_all<QN<5, false>>(src, n_blocks, dst, num_threads);
    case GgufQuantType::Q5_1: return quantize_all<QN<5, true>>(src, n_blocks, dst, num_threads);
  }
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
