// The flash-style attention driver shared by flash_attention and apt_attention, written once against
// Vec (include after simd/vec.h). A "score modifier" Mod turns each tile of raw scores (scale*q).k^T
// into logits and, backward, maps dlogits to dscores plus a bias gradient:
//
//   struct Mod {
//     void begin(int64_t b, int64_t h);         // select the (b, h) slice
//     // In place; in the backward it may keep what grad() needs about this tile.
//     void logits(int64_t i0, int64_t j0, int rows, int cols, float* s, int ld);
//     // dl: dlogits of the tile last passed to logits() in, dscores out; returns the tile holding
//     // d(bias) (may be dl itself), or nullptr.
//     const float* grad(int rows, int cols, float* dl, float* scratch, int ld) const;
//   };
//
// Forward: parallel over (B*H, T-blocks); per block, K is streamed in tiles of kBlockN keys, the
// online softmax keeps a running max and sum per row, and P.V accumulates in a [kBlockM, d] tile.
// [B, H, T, S] is never materialised. Backward: parallel over B*H; keys outer (dK, dV accumulate in
// tiles), queries inner (dQ accumulates), probabilities recomputed from the saved lse. The matrix products and
// their operands come from attention_products.h for the element type (float, or Bf16 with fp32 accumulation);
// softmax, lse, the modifier and dropout run in fp32 for both.
#pragma once

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

#include "flash_attention/attention_args.h"
#include "flash_attention/attention_products.h"
#include "flash_attention/attention_tiles.h"
#include "common/memory_hints.h"
#include "common/parallel_for.h"

namespace apt_fast {
namespace APT_SIMD_NS {

template <class Element>
inline DropoutMask make_dropout(const AttentionIO<Element>& io) {
  DropoutMask drop;
  drop.p = io.dropout_p;
  drop.seed = io.seed;
  drop.keep_scale = io.dropout_p < 1.0f ? 1.0f / (1.0f - io.dropout_p) : 0.0f;
  return drop;
}

// Top-left causal mask: key j is visible to query i when j <= i.
inline void mask_causal(int64_t i0, int64_t j0, int rows, int cols, float* s, int ld) {
  for (int r = 0; r < rows; ++r)
    for (int c = std::max<int64_t>(0, i0 + r - j0 + 1); c < cols; ++c) s[r * ld + c] = kNegInf;
}

// Accumulates a [rows, cols] tile into a [T, S]-indexed target with strides (stride_t, stride_s);
// stride_s == 0 sums the row, stride_t == 0 sums over rows.
inline void accumulate_tile(const float* tile, int ld, int rows, int cols, float* target, int64_t i0, int64_t j0,
                            int64_t stride_t, int64_t stride_s) {
  for (int r = 0; r < rows; ++r) {
    const float* src = tile + r * ld;
    float* dst = target + (i0 + r) * stride_t;
    if (stride_s == 0) {
      Vec sum(0.0f);
      for (int c = 0; c < cols; c += Vec::size) sum = sum + load_n(src + c, std::min(Vec::size, cols - c));
      dst[0] += sum.reduce_add();
    } else {
      dst += j0;
      for (int c = 0; c < cols; c += Vec::size) {
        const int n = std::min(Vec::size, cols - c);
        store_n(dst + c, n, load_n(dst + c, n) + load_n(src + c, n));
      }
    }
  }
}

template <class Element, class Mod>
void flash_forward(const AttentionIO<Element>& io, bool causal, const Mod& proto) {
  const AttentionDims& d = io.dims;
  const int64_t t_blocks = (d.q_len + kBlockM - 1) / kBlockM;
  const int dim = static_cast<int>(d.head_dim);
  const DropoutMask drop = make_dropout(io);
  parallel_for(d.batch * d.heads * t_blocks, io.num_threads, [&](int64_t begin, int64_t end) {
    Mod mod = proto;
    typename Products<Element>::Forward products(io);
    const int ld = products.acc_ld();
    std::vector<float> s(kBlockM * kBlockN), acc(kBlockM * ld);
    float row_m[kBlockM], row_l[kBlockM];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bh = task / t_blocks, b = bh / d.heads, h = bh % d.heads;
      const int64_t i0 = (task % t_blocks) * kBlockM;
      const int rows = static_cast<int>(std::min<int64_t>(kBlockM, d.q_len - i0));
      mod.begin(b, h);
      products.queries(b, h, i0, rows);
      std::fill(row_m, row_m + rows, kNegInf);
      std::fill(row_l, row_l + rows, 0.0f);
      std::fill(acc.begin(), acc.end(), 0.0f);
      const int64_t j_end = causal ? std::min(d.kv_len, i0 + rows) : d.kv_len;
      for (int64_t j0 = 0; j0 < j_end; j0 += kBlockN) {
        const int cols = static_cast<int>(std::min<int64_t>(kBlockN, j_end - j0));
        products.scores(j0, cols, s.data());
        mod.logits(i0, j0, rows, cols, s.data(), kBlockN);
        if (causal && j0 + cols > i0 + 1) mask_causal(i0, j0, rows, cols, s.data(), kBlockN);
        for (int r = 0; r < rows; ++r) {
          float* row = s.data() + r * kBlockN;
          const float m_new = std::max(row_m[r], row_max(row, cols));
          if (m_new == kNegInf) {  // nothing visible yet: contributes zeros
            std::fill(row, row + cols, 0.0f);
            continue;
          }
          const float alpha = std::exp(row_m[r] - m_new);
          row_l[r] = row_l[r] * alpha + exp_shifted(row, cols, m_new);
          row_m[r] = m_new;
          if (alpha != 1.0f) scale_copy(1, dim, acc.data() + r * ld, ld, alpha, acc.data() + r * ld, ld);
          if (drop.active()) drop.apply(row, cols, ((bh * d.q_len + i0 + r) * d.kv_len + j0));
        }
        products.add_pv(j0, cols, s.data(), acc.data());
      }
      float* lse = io.lse + bh * d.q_len + i0;
      for (int r = 0; r < rows; ++r) {
        const bool empty = row_l[r] == 0.0f;
        lse[r] = empty ? kNegInf : row_m[r] + std::log(row_l[r]);
        products.store_out(i0 + r, acc.data() + r * ld, empty ? 0.0f : 1.0f / row_l[r]);
      }
    }
  });
}

// Where backward writes d(bias): an fp32 [Bb, Hb, Tb, Sb] buffer seen through broadcast strides (0 along
// broadcast dims). When several (b, h) share a slice, each task sums into a private slice first and
// adds it under a lock; where every element of a slice lies in one tile per (b, h), a thread's consecutive
// (b, h) of one slice sum into the private slice in turn and add it once (the same sums, in the same order). Or, for a bias of the full [B, H, T, S] (no broadcast), a bf16 buffer: every element
// belongs to one tile, which is rounded to bf16 as it is stored.
struct BiasGradTarget {
  Broadcast4<float> grad;  // data == nullptr: no fp32 bias gradient wanted
  Broadcast4<Bf16> grad_bf16;  // data == nullptr: no bf16 bias gradient wanted
  bool shared(const AttentionDims& d) const {
    return (grad.stride_b == 0 && d.batch > 1) || (grad.stride_h == 0 && d.heads > 1);
  }
  bool one_tile_per_element() const { return grad.stride_t != 0 && grad.stride_s != 0; }
  int64_t slice_size(const AttentionDims& d) const {
    return (grad.stride_t ? d.q_len : 1) * (grad.stride_s ? d.kv_len : 1);
  }
  // Every element is written by exactly one tile of one task: the tiles are stored, not accumulated, and
  // the buffer needs no zeroing first.
  bool written_once(const AttentionDims& d, bool causal) const {
    return !shared(d) && grad.stride_t != 0 && grad.stride_s != 0 && !causal;
  }
  int64_t size(const AttentionDims& d) const {  // of the whole buffer [Bb, Hb, Tb, Sb] (contiguous)
    return (grad.stride_b ? d.batch : 1) * (grad.stride_h ? d.heads : 1) * slice_size(d);
  }
};

// dst rows [i0, i0 + rows) x [j0, j0 + cols) of a bf16 [T, S] slice with row stride ld_dst <- the tile, rounded.
inline void store_tile(const float* tile, int ld, int rows, int cols, Bf16* dst, int64_t i0, int64_t j0,
                       int64_t ld_dst) {
  for (int r = 0; r < rows; ++r) {
    Bf16* out = dst + (i0 + r) * ld_dst + j0;
    for (int c = 0; c < cols; c += Vec::size) {
      const int n = std::min(Vec::size, cols - c);
      if (n == Vec::size) Vec::load(tile + r * ld + c).store(out + c);
      else Vec::load_partial(tile + r * ld + c, n, 0.0f).store_partial(out + c, n);
    }
  }
}

// dst rows [i0, i0 + rows) x [j0, j0 + cols) of a [T, S] slice with row stride ld_dst <- the tile; aligned
// whole vectors bypass the cache (the output is not read again here). Vec::fence() before others read it.
inline void store_tile(const float* tile, int ld, int rows, int cols, float* dst, int64_t i0, int64_t j0,
                       int64_t ld_dst) {
  for (int r = 0; r < rows; ++r) {
    float* out = dst + (i0 + r) * ld_dst + j0;
    int c = 0;
    if (reinterpret_cast<uintptr_t>(out) % sizeof(Vec) == 0)
      for (; c + Vec::size <= cols; c += Vec::size) Vec::load(tile + r * ld + c).stream(out + c);
    std::copy(tile + r * ld + c, tile + r * ld + cols, out + c);
  }
}

template <class Element, class Mod>
void flash_backward(const AttentionIO<Element>& io, bool causal, const Mod& proto, const BiasGradTarget& bias_grad) {
  const AttentionDims& d = io.dims;
  const int dim = static_cast<int>(d.head_dim);
  const DropoutMask drop = make_dropout(io);
  const bool want_bias = bias_grad.grad.data != nullptr;
  const bool shared = want_bias && bias_grad.shared(d);
  const bool overwrite = want_bias && bias_grad.written_once(d, causal);
  if (want_bias) {
    advise_huge_pages(bias_grad.grad.data, bias_grad.size(d) * sizeof(float));
    if (!overwrite) std::fill(bias_grad.grad.data, bias_grad.grad.data + bias_grad.size(d), 0.0f);
  }
  const Broadcast4<Bf16>& grad_bf16 = bias_grad.grad_bf16;  // [B, H, T, S]: stored tile by tile
  if (grad_bf16.data && causal) std::fill(grad_bf16.data, grad_bf16.data + d.batch * d.heads * d.q_len * d.kv_len, 0);
  std::mutex bias_mutex;
  parallel_for(d.batch * d.heads, io.num_threads, [&](int64_t begin, int64_t end) {
    Mod mod = proto;
    const int64_t T = d.q_len, S = d.kv_len;
    typename Products<Element>::Backward products(io);
    std::vector<float> delta(T), s(kBlockM * kBlockN), dp(kBlockM * kBlockN), pz(drop.active() ? kBlockM * kBlockN : 0),
        scratch(kBlockM * kBlockN), local_bias(shared ? bias_grad.slice_size(d) : 0);
    const int64_t local_t = bias_grad.grad.stride_t ? (bias_grad.grad.stride_s ? S : 1) : 0;
    float* local_target = nullptr;  // the shared slice local_bias is summing for, or null
    const auto add_local = [&] {
      std::lock_guard<std::mutex> lock(bias_mutex);
      const int64_t n = static_cast<int64_t>(local_bias.size());
      for (int64_t i = 0; i < n; i += Vec::size) {
        const int w = static_cast<int>(std::min<int64_t>(Vec::size, n - i));
        store_n(local_target + i, w, load_n(local_target + i, w) + load_n(local_bias.data() + i, w));
      }
    };
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / d.heads, h = bh % d.heads;
      mod.begin(b, h);
      float* bias_slice = want_bias ? (shared ? local_bias.data() : bias_grad.grad.at(b, h, 0)) : nullptr;
      const int64_t bias_st = shared ? local_t : bias_grad.grad.stride_t;
      if (shared && !(bias_grad.one_tile_per_element() && local_target == bias_grad.grad.at(b, h, 0))) {
        if (local_target != nullptr) add_local();
        std::fill(local_bias.begin(), local_bias.end(), 0.0f);
        local_target = bias_grad.grad.at(b, h, 0);
      }
      const float* lse = io.lse + bh * T;
      products.begin(b, h);
      for (int64_t i = 0; i < T; ++i) {
        const Element* o = io.out.at(b, h, i);
        const Element* go = io.grad_out.at(b, h, i);
        Vec acc(0.0f);
        for (int c = 0; c < dim; c += Vec::size) {
          const int n = std::min(Vec::size, dim - c);
          acc = Vec::fmadd(load_n(o + c, n), load_n(go + c, n), acc);
        }
        delta[i] = acc.reduce_add();
      }
      for (int64_t j0 = 0; j0 < S; j0 += kBlockN) {
        const int cols = static_cast<int>(std::min<int64_t>(kBlockN, S - j0));
        products.keys(j0, cols);
        for (int64_t i0 = causal ? j0 / kBlockM * kBlockM : 0; i0 < T; i0 += kBlockM) {
          const int rows = static_cast<int>(std::min<int64_t>(kBlockM, T - i0));
          products.scores(i0, rows, cols, s.data());
          mod.logits(i0, j0, rows, cols, s.data(), kBlockN);
          if (causal && j0 + cols > i0 + 1) mask_causal(i0, j0, rows, cols, s.data(), kBlockN);
          for (int r = 0; r < rows; ++r) {  // s <- P = exp(logits - lse)
            float* row = s.data() + r * kBlockN;
            if (lse[i0 + r] == kNegInf) std::fill(row, row + cols, 0.0f); else exp_shifted(row, cols, lse[i0 + r]);
          }
          products.grad_probs(i0, rows, cols, dp.data());  // dP = dO . V^T
          const float* kept = s.data();  // P Z: the probabilities that reached P.V
          if (drop.active()) {
            for (int r = 0; r < rows; ++r) {
              const uint64_t first = (bh * T + i0 + r) * S + j0;
              for (int c = 0; c < cols; ++c) {
                const float z = drop.factor(first + c);
                pz[r * kBlockN + c] = s[r * kBlockN + c] * z;
                dp[r * kBlockN + c] *= z;
              }
            }
            kept = pz.data();
          }
          products.add_dv(i0, rows, cols, kept);  // dV += (P Z)^T . dO
          for (int r = 0; r < rows; ++r) {  // dlogits = P * (dP Z - delta)
            const Vec dr(delta[i0 + r]);
            float* dpr = dp.data() + r * kBlockN;
            const float* pr = s.data() + r * kBlockN;
            for (int c = 0; c < cols; c += Vec::size) {
              const int n = std::min(Vec::size, cols - c);
              store_n(dpr + c, n, load_n(pr + c, n) * (load_n(dpr + c, n) - dr));
            }
          }
          const float* dbias = mod.grad(rows, cols, dp.data(), scratch.data(), kBlockN);
          if (grad_bf16.data != nullptr && dbias != nullptr)
            store_tile(dbias, kBlockN, rows, cols, grad_bf16.at(b, h, 0), i0, j0, grad_bf16.stride_t);
          if (bias_slice != nullptr && dbias != nullptr) {
            if (overwrite) store_tile(dbias, kBlockN, rows, cols, bias_slice, i0, j0, bias_st);
            else accumulate_tile(dbias, kBlockN, rows, cols, bias_slice, i0, j0, bias_st, bias_grad.grad.stride_s ? 1 : 0);
          }
          products.add_dq_dk(i0, rows, cols, dp.data());  // dQ += dS . K, dK += dS^T . Q (times scale)
        }
        products.end_keys(cols);
      }
      if (overwrite) Vec::fence();
      products.end();
    }
    if (local_target != nullptr) add_local();
  });
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
