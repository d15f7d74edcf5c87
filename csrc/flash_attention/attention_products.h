// The matrix products of the flash-style attention kernels, per element type (include after simd/vec.h): what
// flash_core.h's driver and APT's head mean multiply, and how their operands are held. One object per thread.
//
//   Forward:  queries(b, h, i0, rows) selects a query block; scores(j0, cols, s) gives s = (scale q) k^T for a
//             key tile; add_pv(j0, cols, p, acc) adds p . v to acc (leading dimension acc_ld()); store_out
//             writes a row of the output.
//   Backward: begin(b, h); keys(j0, cols) selects a key tile; scores, grad_probs (dP = dO v^T), add_dv
//             (dV += P^T dO), add_dq_dk (dQ += dS k, dK += dS^T q, both times scale); end_keys() writes the
//             tile's dK, dV; end() writes dQ. v and grad_out may be absent (APT's head mean has neither).
//
// Fp32*: the fp32 kernels, q pre-scaled, B operands transposed to fp32 tiles. Bf16*: bf16 operands packed into
// scratch (bf16_tiles.h): the forward's K^T and V once per (b, h); the backward's q, q^T, dO and dO^T once per
// (b, h), the key tile's K^T, V^T and K once per tile; P and dS (rounded to bf16 as operands only) per tile; fp32
// accumulators, scaled and rounded to bf16 at the end.
#pragma once

#include <algorithm>
#include <vector>

#include "flash_attention/attention_args.h"
#include "flash_attention/attention_tiles.h"
#include "flash_attention/bf16_tiles.h"

namespace apt_fast {
namespace APT_SIMD_NS {

constexpr int kBlockM = 64;  // query rows per tile
constexpr int kBlockN = 64;  // keys per tile

// K^T tiles for the forward, whose tasks (one per query block) each sweep every key tile of their (b, h):
// the whole K^T of the current (b, h) is kept when it is small (up to kWholeFloats) and `whole` allows it, so
// the query blocks of one (b, h) that a thread runs in turn transpose it once; otherwise each tile is
// transposed on demand.
class TransposedKeys {
 public:
  static constexpr int64_t kWholeFloats = 256 * 1024;  // 1 MiB

  TransposedKeys(const HeadTensor<const float>& k, int64_t kv_len, int dim, bool whole)
      : k_(k), kv_len_(kv_len), dim_(dim), whole_(whole && kv_len * dim <= kWholeFloats),
        buf_(whole_ ? kv_len * dim : int64_t{kBlockN} * dim) {}

  // K^T for keys [j0, j0 + cols) of (b, h): dim rows with leading dimension ld().
  const float* tile(int64_t b, int64_t h, int64_t j0, int cols) {
    if (!whole_) {
      transpose(cols, dim_, k_.at(b, h, j0), k_.stride_l, buf_.data(), kBlockN);
      return buf_.data();
    }
    if (b != b_ || h != h_) {
      transpose(static_cast<int>(kv_len_), dim_, k_.at(b, h, 0), k_.stride_l, buf_.data(), kv_len_);
      b_ = b, h_ = h;
    }
    return buf_.data() + j0;
  }
  int64_t ld() const { return whole_ ? kv_len_ : kBlockN; }

 private:
  HeadTensor<const float> k_;
  int64_t kv_len_;
  int dim_;
  bool whole_;
  std::vector<float> buf_;
  int64_t b_ = -1, h_ = -1;
};

// whole_keys: keep the keys of a whole (b, h) (when small), for callers whose consecutive tasks share it; false:
// one key tile at a time (APT's head mean, which keeps one such object per head).
class Fp32Forward {
 public:
  explicit Fp32Forward(const AttentionIO<float>& io, bool whole_keys = true)
      : io_(io), dim_(static_cast<int>(io.dims.head_dim)), keys_(io.k, io.dims.kv_len, dim_, whole_keys),
        qs_(kBlockM * dim_) {}

  int acc_ld() const { return dim_; }
  void queries(int64_t b, int64_t h, int64_t i0, int rows) {
    b_ = b, h_ = h, rows_ = rows;
    scale_copy(rows, dim_, io_.q.at(b, h, i0), io_.q.stride_l, io_.scale, qs_.data(), dim_);
  }
  void scores(int64_t j0, int cols, float* s) {  // s [rows, cols] (leading dim kBlockN)
    gemm(rows_, cols, dim_, qs_.data(), dim_, keys_.tile(b_, h_, j0, cols), keys_.ld(), s, kBlockN, false);
  }
  void add_pv(int64_t j0, int cols, const float* p, float* acc) const {  // acc [rows, d] += p [rows, cols] . v
    gemm(rows_, dim_, cols, p, kBlockN, io_.v.at(b_, h_, j0), io_.v.stride_l, acc, dim_, true);
  }
  void store_out(int64_t i, const float* acc_row, float factor) const {
    scale_copy(1, dim_, acc_row, dim_, factor, io_.out.at(b_, h_, i), dim_);
  }

 private:
  const AttentionIO<float>& io_;
  int dim_;
  TransposedKeys keys_;
  std::vector<float> qs_;  // [kBlockM, d]: scale q
  int64_t b_ = 0, h_ = 0;
  int rows_ = 0;
};

class Fp32Backward {
 public:
  explicit Fp32Backward(const AttentionIO<float>& io)
      : io_(io), dim_(static_cast<int>(io.dims.head_dim)), qs_(io.dims.q_len * dim_), kt_(dim_ * kBlockN),
        vt_(io.v.data ? dim_ * kBlockN : 0), dk_(kBlockN * dim_), dv_(io.dv.data ? kBlockN * dim_ : 0) {}

  void begin(int64_t b, int64_t h) {
    b_ = b, h_ = h;
    const int64_t T = io_.dims.q_len;
    scale_copy(static_cast<int>(T), dim_, io_.q.at(b, h, 0), io_.q.stride_l, io_.scale, qs_.data(), dim_);
    for (int64_t i = 0; i < T; ++i) std::fill(io_.dq.at(b, h, i), io_.dq.at(b, h, i) + dim_, 0.0f);
  }
  void keys(int64_t j0, int cols) {
    j0_ = j0;
    transpose(cols, dim_, io_.k.at(b_, h_, j0), io_.k.stride_l, kt_.data(), kBlockN);
    if (io_.v.data) transpose(cols, dim_, io_.v.at(b_, h_, j0), io_.v.stride_l, vt_.data(), kBlockN);
    std::fill(dk_.begin(), dk_.end(), 0.0f);
    std::fill(dv_.begin(), dv_.end(), 0.0f);
  }
  void scores(int64_t i0, int rows, int cols, float* s) const {
    gemm(rows, cols, dim_, qs_.data() + i0 * dim_, dim_, kt_.data(), kBlockN, s, kBlockN, false);
  }
  void grad_probs(int64_t i0, int rows, int cols, float* dp) const {  // dP = dO . V^T
    gemm(rows, cols, dim_, io_.grad_out.at(b_, h_, i0), io_.grad_out.stride_l, vt_.data(), kBlockN, dp, kBlockN,
         false);
  }
  void add_dv(int64_t i0, int rows, int cols, const float* pz) {  // dV += (P Z)^T . dO
    gemm_at(cols, dim_, rows, pz, kBlockN, io_.grad_out.at(b_, h_, i0), io_.grad_out.stride_l, dv_.data(), dim_,
            true);
  }
  void add_dq_dk(int64_t i0, int rows, int cols, const float* ds) {
    gemm(rows, dim_, cols, ds, kBlockN, io_.k.at(b_, h_, j0_), io_.k.stride_l, io_.dq.at(b_, h_, i0),
         io_.dq.stride_l, true);  // dQ += dS . K (scaled in end())
    gemm_at(cols, dim_, rows, ds, kBlockN, qs_.data() + i0 * dim_, dim_, dk_.data(), dim_,
            true);  // dK += dS^T . (scale Q)
  }
  void end_keys(int cols) const {
    for (int c = 0; c < cols; ++c) {
      std::copy(dk_.data() + c * dim_, dk_.data() + (c + 1) * dim_, io_.dk.at(b_, h_, j0_ + c));
      if (io_.dv.data) std::copy(dv_.data() + c * dim_, dv_.data() + (c + 1) * dim_, io_.dv.at(b_, h_, j0_ + c));
    }
  }
  void end() const {
    for (int64_t i = 0; i < io_.dims.q_len; ++i)
      scale_copy(1, dim_, io_.dq.at(b_, h_, i), dim_, io_.scale, io_.dq.at(b_, h_, i), dim_);
  }

 private:
  const AttentionIO<float>& io_;
  int dim_;
  std::vector<float> qs_, kt_, vt_, dk_, dv_;  // [T, d] scale q; [d, kBlockN] K^T, V^T; [kBlockN, d] dK, dV
  int64_t b_ = 0, h_ = 0, j0_ = 0;
};

// out[0, n) = factor * acc[0, n) rounded to bf16.
inline void store_bf16_row(const float* acc, int n, float factor, Bf16* out) {
  const Vec f(factor);
  for (int c = 0; c < n; c += Vec::size) {
    const int w = std::min(Vec::size, n - c);
    const Vec x = load_n(acc + c, w) * f;
    if (w == Vec::size) x.store(out + c); else x.store_partial(out + c, w);
  }
}

// out[x] = factor * t[x * kBlockN] for x < n (a column of a [n, kBlockN] tile with Vec::size rows to spare), rounded
// to bf16.
inline void store_bf16_column(const float* t, int n, float factor, Bf16* out) {
  const Vec f(factor), rows = Vec::iota() * Vec(static_cast<float>(kBlockN));
  for (int x = 0; x < n; x += Vec::size) {
    const int w = std::min(Vec::size, n - x);
    const Vec v = Vec::gather(t + x * kBlockN, rows) * f;
    if (w == Vec::size) v.store(out + x); else v.store_partial(out + x, w);
  }
}

// scale * s for a [rows, cols] tile (leading dimension kBlockN).
inline void scale_tile(int rows, int cols, float scale, float* s) { scale_copy(rows, cols, s, kBlockN, scale, s, kBlockN); }

class Bf16Forward {
 public:
  explicit Bf16Forward(const AttentionIO<Bf16>& io, bool whole_keys = true)
      : io_(io), dim_(static_cast<int>(io.dims.head_dim)), dk_(padded_k(dim_)), dn_(padded_mn(dim_)),
        whole_keys_(whole_keys), keys_ld_(whole_keys ? padded_mn(io.dims.kv_len) : kBlockN), q_(kBlockM * dk_),
        kt_(dk_ * keys_ld_),
        v_(io.v.data ? padded_k(io.dims.kv_len) * dn_ : 0), p_(kBlockM * padded_k(kBlockN)) {}

  int acc_ld() const { return static_cast<int>(dn_); }
  void queries(int64_t b, int64_t h, int64_t i0, int rows) {
    if (b != b_ || h != h_) {  // K^T (whole_keys) and V of the whole (b, h), reused by its query blocks
      const int S = static_cast<int>(io_.dims.kv_len);
      if (whole_keys_) pack_b_cols(io_.k.at(b, h, 0), io_.k.stride_l, S, dim_, kt_.data(), keys_ld_);
      if (io_.v.data) pack_b_rows(io_.v.at(b, h, 0), io_.v.stride_l, S, dim_, v_.data(), dn_);
      b_ = b, h_ = h;
    }
    rows_ = rows;
    pack_a_rows(io_.q.at(b, h, i0), io_.q.stride_l, rows, dim_, q_.data(), dk_);
  }
  void scores(int64_t j0, int cols, float* s) {
    if (!whole_keys_) pack_b_cols(io_.k.at(b_, h_, j0), io_.k.stride_l, cols, dim_, kt_.data(), keys_ld_);
    const Operand* keys = whole_keys_ ? b_at(kt_.data(), keys_ld_, 0, j0) : kt_.data();
    gemm_(rows_, cols, dim_, q_.data(), dk_, keys, keys_ld_, s, kBlockN, false);
    scale_tile(rows_, cols, io_.scale, s);
  }
  void add_pv(int64_t j0, int cols, const float* p, float* acc) {
    pack_a_rows(p, kBlockN, rows_, cols, p_.data(), padded_k(kBlockN));
    gemm_(rows_, dim_, cols, p_.data(), padded_k(kBlockN), b_at(v_.data(), dn_, j0, 0), dn_, acc, dn_, true);
  }
  void store_out(int64_t i, const float* acc_row, float factor) const {
    store_bf16_row(acc_row, dim_, factor, io_.out.at(b_, h_, i));
  }

 private:
  const AttentionIO<Bf16>& io_;
  int dim_;
  int64_t dk_, dn_;
  bool whole_keys_;
  int64_t keys_ld_;
  std::vector<Operand> q_;   // A [kBlockM, dk]
  std::vector<Operand> kt_;  // B K^T [d, S] of (b, h), or [d, kBlockN] of a key tile
  std::vector<Operand> v_;   // B V [S, d] of (b, h)
  std::vector<Operand> p_;   // A P [kBlockM, kBlockN]
  Bf16Gemm gemm_;
  int64_t b_ = -1, h_ = -1;
  int rows_ = 0;
};

class Bf16Backward {
 public:
  explicit Bf16Backward(const AttentionIO<Bf16>& io)
      : io_(io), dim_(static_cast<int>(io.dims.head_dim)), dk_(padded_k(dim_)), dn_(padded_mn(dim_)),
        t_rows_((io.dims.q_len + kBlockM - 1) / kBlockM * kBlockM), kn_(padded_k(kBlockN)),
        q_(t_rows_ * dk_), qt_(dn_ * t_rows_), do_(io.grad_out.data ? t_rows_ * dk_ : 0),
        dot_(io.grad_out.data ? dn_ * t_rows_ : 0), kt_(dk_ * kBlockN), vt_(io.v.data ? dk_ * kBlockN : 0),
        k_(kn_ * dn_), pz_(kn_ * kBlockN), ds_a_(kBlockM * kn_), ds_b_(kn_ * kBlockN), dq_(t_rows_ * dn_),
        dkt_((dn_ + Vec::size) * kBlockN), dvt_(io.dv.data ? (dn_ + Vec::size) * kBlockN : 0) {}

  void begin(int64_t b, int64_t h) {
    b_ = b, h_ = h;
    const int T = static_cast<int>(io_.dims.q_len);
    pack_a_rows(io_.q.at(b, h, 0), io_.q.stride_l, T, dim_, q_.data(), dk_);
    pack_a_cols(io_.q.at(b, h, 0), io_.q.stride_l, T, dim_, qt_.data(), t_rows_);
    if (io_.grad_out.data) {
      pack_a_rows(io_.grad_out.at(b, h, 0), io_.grad_out.stride_l, T, dim_, do_.data(), dk_);
      pack_a_cols(io_.grad_out.at(b, h, 0), io_.grad_out.stride_l, T, dim_, dot_.data(), t_rows_);
    }
    std::fill(dq_.begin(), dq_.end(), 0.0f);
  }
  void keys(int64_t j0, int cols) {
    j0_ = j0;
    pack_b_cols(io_.k.at(b_, h_, j0), io_.k.stride_l, cols, dim_, kt_.data(), kBlockN);
    if (io_.v.data) pack_b_cols(io_.v.at(b_, h_, j0), io_.v.stride_l, cols, dim_, vt_.data(), kBlockN);
    pack_b_rows(io_.k.at(b_, h_, j0), io_.k.stride_l, cols, dim_, k_.data(), dn_);
    std::fill(dkt_.begin(), dkt_.end(), 0.0f);
    std::fill(dvt_.begin(), dvt_.end(), 0.0f);
  }
  void scores(int64_t i0, int rows, int cols, float* s) const {
    gemm_(rows, cols, dim_, q_.data() + i0 * dk_, dk_, kt_.data(), kBlockN, s, kBlockN, false);
    scale_tile(rows, cols, io_.scale, s);
  }
  void grad_probs(int64_t i0, int rows, int cols, float* dp) const {
    gemm_(rows, cols, dim_, do_.data() + i0 * dk_, dk_, vt_.data(), kBlockN, dp, kBlockN, false);
  }
  void add_dv(int64_t i0, int rows, int cols, const float* pz) {  // dV^T [d, cols] += dO^T . (P Z)
    pack_b_rows(pz, kBlockN, rows, cols, pz_.data(), kBlockN);
    gemm_(dim_, cols, rows, dot_.data() + i0, t_rows_, pz_.data(), kBlockN, dvt_.data(), kBlockN, true);
  }
  void add_dq_dk(int64_t i0, int rows, int cols, const float* ds) {
    pack_a_rows(ds, kBlockN, rows, cols, ds_a_.data(), kn_);
    gemm_(rows, dim_, cols, ds_a_.data(), kn_, k_.data(), dn_, dq_.data() + i0 * dn_, dn_, true);  // dQ += dS . K
    pack_b_rows(ds, kBlockN, rows, cols, ds_b_.data(), kBlockN);
    gemm_(dim_, cols, rows, qt_.data() + i0, t_rows_, ds_b_.data(), kBlockN, dkt_.data(), kBlockN,
          true);  // dK^T += Q^T . dS
  }
  void end_keys(int cols) const {
    for (int c = 0; c < cols; ++c) {
      store_bf16_column(dkt_.data() + c, dim_, io_.scale, io_.dk.at(b_, h_, j0_ + c));
      if (io_.dv.data) store_bf16_column(dvt_.data() + c, dim_, 1.0f, io_.dv.at(b_, h_, j0_ + c));
    }
  }
  void end() const {
    for (int64_t i = 0; i < io_.dims.q_len; ++i)
      store_bf16_row(dq_.data() + i * dn_, dim_, io_.scale, io_.dq.at(b_, h_, i));
  }

 private:
  const AttentionIO<Bf16>& io_;
  int dim_;
  int64_t dk_, dn_, t_rows_, kn_;
  std::vector<Operand> q_, qt_;      // A q [T, d]; A q^T [d, T]
  std::vector<Operand> do_, dot_;    // A dO [T, d]; A dO^T [d, T]
  std::vector<Operand> kt_, vt_, k_; // B K^T, V^T [d, kBlockN]; B K [kBlockN, d]
  std::vector<Operand> pz_, ds_a_, ds_b_;  // B P Z [kBlockM, kBlockN]; A dS; B dS
  std::vector<float> dq_, dkt_, dvt_;      // [T, d]; [d (+ Vec::size spare), kBlockN] dK^T, dV^T (fp32)
  Bf16Gemm gemm_;
  int64_t b_ = 0, h_ = 0, j0_ = 0;
};

template <class T>
struct Products;
template <>
struct Products<float> {
  using Forward = Fp32Forward;
  using Backward = Fp32Backward;
};
template <>
struct Products<Bf16> {
  using Forward = Bf16Forward;
  using Backward = Bf16Backward;
};

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
