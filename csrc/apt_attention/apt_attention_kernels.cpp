// APT's head-mean and final attention kernels (see apt_attention.h), written once against Vec and
// compiled once per SIMD level. The attention reuses flash_core.h with a modifier that applies the
// clamps of T1 and T17-T19 on the fly.
#include "apt_attention/apt_attention.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "common/simd/vec.h"
#include "flash_attention/flash_core.h"

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// T1: clamp(nan_to_num(x, nan=0, posinf=10, neginf=-10), -15, 15).
inline Vec sanitize(Vec x) {
  Vec y = Vec::select(x == x, x, Vec(0.0f));
  y = Vec::select(y == Vec(kInf), Vec(10.0f), y);
  y = Vec::select(y == Vec(-kInf), Vec(-10.0f), y);
  return Vec::min(Vec::max(y, Vec(-15.0f)), Vec(15.0f));
}

// The masks of one (b, h) slice; add() turns a tile of raw scores into s_h of spec §2.1.
struct MaskRows {
  const AptMasks* masks;
  const float* key_pad = nullptr;
  const float* mask = nullptr;

  void begin(int64_t b, int64_t h, int64_t kv_len) {
    key_pad = masks->key_pad ? masks->key_pad + b * kv_len : nullptr;
    mask = masks->mask.data ? masks->mask.at(b, h, 0) : nullptr;
  }
  // Pointer to mask[t, j0:j0+cols] with unit stride (gathered into tmp when the mask is strided along S).
  const float* mask_row(int64_t t, int64_t j0, int cols, float* tmp) const {
    const int64_t ss = masks->mask.stride_s;
    const float* row = mask + t * masks->mask.stride_t + j0 * ss;
    if (ss == 1) return row;
    for (int c = 0; c < cols; ++c) tmp[c] = row[c * ss];
    return tmp;
  }
  // x = raw + key_pad + mask for lanes c..c+n of row t (mrow from mask_row).
  Vec scores(Vec raw, int64_t j0, int c, int n, const float* mrow) const {
    if (key_pad) raw = raw + load_n(key_pad + j0 + c, n);
    if (mask) raw = raw + load_n(mrow + c, n);
    return raw;
  }
};

// In the backward, logits() also keeps the two clamp-pass factors of each element, so that grad() is
// two multiplies: dF = dlogits [T19, T17 pass] and ds = 0.2 dF [T1 pass].
struct AptMod {
  const AptAttentionArgs* args;
  bool backward = false;
  MaskRows rows_of{&args->masks};
  const float* f = nullptr;
  const float* m = nullptr;
  std::vector<float> pass_f, pass_s;  // [kBlockM, kBlockN] tiles (backward only)
  float tmp[kBlockN];

  void begin(int64_t b, int64_t h) {
    const int64_t ts = args->io.dims.q_len * args->io.dims.kv_len;
    rows_of.begin(b, h, args->io.dims.kv_len);
    f = args->f + b * ts;
    m = args->m + b * ts;
    if (backward && pass_f.empty()) pass_f.resize(kBlockM * kBlockN), pass_s.resize(kBlockM * kBlockN);
  }

  void logits(int64_t i0, int64_t j0, int rows, int cols, float* s, int ld) {
    const int64_t S = args->io.dims.kv_len;
    for (int r = 0; r < rows; ++r) {
      const int64_t t = i0 + r;
      const float* mrow = rows_of.mask ? rows_of.mask_row(t, j0, cols, tmp) : nullptr;
      for (int c = 0; c < cols; c += Vec::size) {
        const int n = std::min(Vec::size, cols - c);
        const int at = r * ld + c;
        const Vec x = rows_of.scores(load_n(s + at, n), j0, c, n, mrow);
        const Vec fv = load_n(f + t * S + j0 + c, n), mv = load_n(m + t * S + j0 + c, n);
        const Vec o_in = fv + Vec(0.2f) * (sanitize(x) - mv);
        Vec o = clamp(o_in, -15.0f, 15.0f);        // T17
        if (mrow) o = o + load_n(mrow + c, n);     // T18
        o = Vec::select(o == o, o, Vec(0.0f));     // T19
        store_n(s + at, n, clamp(o, -30.0f, 30.0f));
        if (backward) {
          store_n(pass_f.data() + at, n, pass_within(pass_within(Vec(1.0f), o, -30.0f, 30.0f), o_in, -15.0f, 15.0f));
          store_n(pass_s.data() + at, n, pass_within(Vec(0.2f), x, -15.0f, 15.0f));
        }
      }
    }
  }

  // dl (dlogits) -> ds; scratch <- dF.
  const float* grad(int rows, int cols, float* dl, float* scratch, int ld) const {
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; c += Vec::size) {
        const int n = std::min(Vec::size, cols - c);
        const int at = r * ld + c;
        const Vec g = load_n(dl + at, n) * load_n(pass_f.data() + at, n);
        store_n(scratch + at, n, g);
        store_n(dl + at, n, g * load_n(pass_s.data() + at, n));
      }
    return scratch;
  }
};

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

void apt_attention_fwd(const AptAttentionArgs& args) {
  flash_forward(args.io, false, AptMod{&args});
}

void apt_attention_bwd(const AptAttentionArgs& args) {
  const AttentionDims& d = args.io.dims;
  BiasGradTarget target;
  target.grad = Broadcast4<float>{args.grad_f, d.q_len * d.kv_len, 0, d.kv_len, 1};
  flash_backward(args.io, false, AptMod{&args, true}, target);
}

// Parallel over (b, T-blocks); each key tile sums the sanitised scores of every head.
void apt_head_mean_fwd(const AptHeadMeanArgs& a) {
  const AttentionDims& d = a.dims;
  const int dim = static_cast<int>(d.head_dim);
  const int64_t t_blocks = ceil_div(d.q_len, kBlockM), S = d.kv_len;
  parallel_for(d.batch * t_blocks, a.num_threads, [&](int64_t begin, int64_t end) {
    std::vector<float> qs(d.heads * kBlockM * dim), kt(dim * kBlockN), s(kBlockM * kBlockN), acc(kBlockM * kBlockN);
    float tmp[kBlockN];
    MaskRows masks{&a.masks};
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / t_blocks, i0 = (task % t_blocks) * kBlockM;
      const int rows = static_cast<int>(std::min<int64_t>(kBlockM, d.q_len - i0));
      for (int64_t h = 0; h < d.heads; ++h)
        scale_copy(rows, dim, a.q.at(b, h, i0), a.q.stride_l, a.scale, qs.data() + h * kBlockM * dim, dim);
      for (int64_t j0 = 0; j0 < S; j0 += kBlockN) {
        const int cols = static_cast<int>(std::min<int64_t>(kBlockN, S - j0));
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t h = 0; h < d.heads; ++h) {
          masks.begin(b, h, S);
          transpose(cols, dim, a.k.at(b, h, j0), a.k.stride_l, kt.data(), kBlockN);
          gemm(rows, cols, dim, qs.data() + h * kBlockM * dim, dim, kt.data(), kBlockN, s.data(), kBlockN, false);
          for (int r = 0; r < rows; ++r) {
            const float* mrow = masks.mask ? masks.mask_row(i0 + r, j0, cols, tmp) : nullptr;
            for (int c = 0; c < cols; c += Vec::size) {
              const int n = std::min(Vec::size, cols - c);
              const int at = r * kBlockN + c;
              store_n(acc.data() + at, n,
                      load_n(acc.data() + at, n) + sanitize(masks.scores(load_n(s.data() + at, n), j0, c, n, mrow)));
            }
          }
        }
        for (int r = 0; r < rows; ++r)
          scale_copy(1, cols, acc.data() + r * kBlockN, kBlockN, 1.0f / static_cast<float>(d.heads),
                     a.mean + (b * d.q_len + i0 + r) * S + j0, S);
      }
    }
  });
}

// Parallel over (b, h): keys outer (dK accumulates per tile), queries inner (dQ in place).
void apt_head_mean_bwd(const AptHeadMeanArgs& a) {
  const AttentionDims& d = a.dims;
  const int dim = static_cast<int>(d.head_dim);
  const int64_t T = d.q_len, S = d.kv_len;
  const float inv_heads = 1.0f / static_cast<float>(d.heads);
  parallel_for(d.batch * d.heads, a.num_threads, [&](int64_t begin, int64_t end) {
    std::vector<float> qs(T * dim), kt(dim * kBlockN), s(kBlockM * kBlockN), dk_acc(kBlockN * dim);
    float tmp[kBlockN];
    MaskRows masks{&a.masks};
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / d.heads, h = bh % d.heads;
      masks.begin(b, h, S);
      scale_copy(static_cast<int>(T), dim, a.q.at(b, h, 0), a.q.stride_l, a.scale, qs.data(), dim);
      for (int64_t i = 0; i < T; ++i) std::fill(a.dq.at(b, h, i), a.dq.at(b, h, i) + dim, 0.0f);
      for (int64_t j0 = 0; j0 < S; j0 += kBlockN) {
        const int cols = static_cast<int>(std::min<int64_t>(kBlockN, S - j0));
        transpose(cols, dim, a.k.at(b, h, j0), a.k.stride_l, kt.data(), kBlockN);
        std::fill(dk_acc.begin(), dk_acc.end(), 0.0f);
        for (int64_t i0 = 0; i0 < T; i0 += kBlockM) {
          const int rows = static_cast<int>(std::min<int64_t>(kBlockM, T - i0));
          gemm(rows, cols, dim, qs.data() + i0 * dim, dim, kt.data(), kBlockN, s.data(), kBlockN, false);
          for (int r = 0; r < rows; ++r) {  // s <- dM / H where T1 passes the gradient
            const float* mrow = masks.mask ? masks.mask_row(i0 + r, j0, cols, tmp) : nullptr;
            const float* gm = a.grad_mean + (b * T + i0 + r) * S + j0;
            for (int c = 0; c < cols; c += Vec::size) {
              const int n = std::min(Vec::size, cols - c);
              float* x = s.data() + r * kBlockN + c;
              const Vec scores = masks.scores(load_n(x, n), j0, c, n, mrow);
              store_n(x, n, pass_within(load_n(gm + c, n) * Vec(inv_heads), scores, -15.0f, 15.0f));
            }
          }
          gemm(rows, dim, cols, s.data(), kBlockN, a.k.at(b, h, j0), a.k.stride_l, a.dq.at(b, h, i0), a.dq.stride_l,
               true);
          gemm_at(cols, dim, rows, s.data(), kBlockN, qs.data() + i0 * dim, dim, dk_acc.data(), dim, true);
        }
        for (int c = 0; c < cols; ++c)
          std::copy(dk_acc.data() + c * dim, dk_acc.data() + (c + 1) * dim, a.dk.at(b, h, j0 + c));
      }
      for (int64_t i = 0; i < T; ++i) scale_copy(1, dim, a.dq.at(b, h, i), dim, a.scale, a.dq.at(b, h, i), dim);
    }
  });
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
