// APT's head-mean and final attention kernels (see apt_attention.h), written once against Vec and
// compiled once per SIMD level, for fp32 and bf16 q, k, v. The attention reuses flash_core.h with a modifier
// that applies the clamps of T1 and T17-T19 on the fly; the head mean multiplies through attention_products.h.
#include "apt_attention/apt_attention.h"

#include <algorithm>
#include <limits>
#include <memory>
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
template <class T>
struct AptMod {
  const AptAttentionArgs<T>* args;
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

template <class T>
AttentionIO<T> head_mean_io(const AptHeadMeanArgs<T>& a) {
  AttentionIO<T> io;
  io.dims = a.dims;
  io.q = a.q, io.k = a.k;
  io.scale = a.scale;
  io.dq = a.dq, io.dk = a.dk;
  io.num_threads = a.num_threads;
  return io;
}

template <class T>
void attention_fwd(const AptAttentionArgs<T>& args) {
  flash_forward(args.io, false, AptMod<T>{&args});
}

template <class T>
void attention_bwd(const AptAttentionArgs<T>& args) {
  const AttentionDims& d = args.io.dims;
  BiasGradTarget target;
  target.grad = Broadcast4<float>{args.grad_f, d.q_len * d.kv_len, 0, d.kv_len, 1};
  flash_backward(args.io, false, AptMod<T>{&args, true}, target);
}

// Parallel over (b, T-blocks); each key tile sums the sanitised scores of every head. One products object per
// head keeps that head's query block; the keys come a tile at a time.
template <class T>
void head_mean_fwd(const AptHeadMeanArgs<T>& a) {
  using Forward = typename Products<T>::Forward;
  const AttentionDims& d = a.dims;
  const int64_t t_blocks = ceil_div(d.q_len, kBlockM), S = d.kv_len;
  const AttentionIO<T> io = head_mean_io(a);
  parallel_for(d.batch * t_blocks, a.num_threads, [&](int64_t begin, int64_t end) {
    std::vector<std::unique_ptr<Forward>> heads;
    for (int64_t h = 0; h < d.heads; ++h) heads.push_back(std::make_unique<Forward>(io, false));
    std::vector<float> s(kBlockM * kBlockN), acc(kBlockM * kBlockN);
    float tmp[kBlockN];
    MaskRows masks{&a.masks};
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / t_blocks, i0 = (task % t_blocks) * kBlockM;
      const int rows = static_cast<int>(std::min<int64_t>(kBlockM, d.q_len - i0));
      for (int64_t h = 0; h < d.heads; ++h) heads[h]->queries(b, h, i0, rows);
      for (int64_t j0 = 0; j0 < S; j0 += kBlockN) {
        const int cols = static_cast<int>(std::min<int64_t>(kBlockN, S - j0));
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t h = 0; h < d.heads; ++h) {
          masks.begin(b, h, S);
          heads[h]->scores(j0, cols, s.data());
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

// Parallel over (b, h): keys outer (dK accumulates per tile), queries inner (dQ accumulates).
template <class T>
void head_mean_bwd(const AptHeadMeanArgs<T>& a) {
  const AttentionDims& d = a.dims;
  const int64_t T_len = d.q_len, S = d.kv_len;
  const float inv_heads = 1.0f / static_cast<float>(d.heads);
  const AttentionIO<T> io = head_mean_io(a);
  parallel_for(d.batch * d.heads, a.num_threads, [&](int64_t begin, int64_t end) {
    typename Products<T>::Backward products(io);
    std::vector<float> s(kBlockM * kBlockN);
    float tmp[kBlockN];
    MaskRows masks{&a.masks};
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / d.heads, h = bh % d.heads;
      masks.begin(b, h, S);
      products.begin(b, h);
      for (int64_t j0 = 0; j0 < S; j0 += kBlockN) {
        const int cols = static_cast<int>(std::min<int64_t>(kBlockN, S - j0));
        products.keys(j0, cols);
        for (int64_t i0 = 0; i0 < T_len; i0 += kBlockM) {
          const int rows = static_cast<int>(std::min<int64_t>(kBlockM, T_len - i0));
          products.scores(i0, rows, cols, s.data());
          for (int r = 0; r < rows; ++r) {  // s <- dM / H where T1 passes the gradient
            const float* mrow = masks.mask ? masks.mask_row(i0 + r, j0, cols, tmp) : nullptr;
            const float* gm = a.grad_mean + (b * T_len + i0 + r) * S + j0;
            for (int c = 0; c < cols; c += Vec::size) {
              const int n = std::min(Vec::size, cols - c);
              float* x = s.data() + r * kBlockN + c;
              const Vec scores = masks.scores(load_n(x, n), j0, c, n, mrow);
              store_n(x, n, pass_within(load_n(gm + c, n) * Vec(inv_heads), scores, -15.0f, 15.0f));
            }
          }
          products.add_dq_dk(i0, rows, cols, s.data());
        }
        products.end_keys(cols);
      }
      products.end();
    }
  });
}

}  // namespace

void apt_attention_fwd(const AptAttentionArgs<float>& args) { attention_fwd(args); }
void apt_attention_bwd(const AptAttentionArgs<float>& args) { attention_bwd(args); }
void apt_head_mean_fwd(const AptHeadMeanArgs<float>& args) { head_mean_fwd(args); }
void apt_head_mean_bwd(const AptHeadMeanArgs<float>& args) { head_mean_bwd(args); }
void apt_attention_fwd(const AptAttentionArgs<Bf16>& args) { attention_fwd(args); }
void apt_attention_bwd(const AptAttentionArgs<Bf16>& args) { attention_bwd(args); }
void apt_head_mean_fwd(const AptHeadMeanArgs<Bf16>& args) { head_mean_fwd(args); }
void apt_head_mean_bwd(const AptHeadMeanArgs<Bf16>& args) { head_mean_bwd(args); }

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
