// Entry points of the attention kernels: validate the views, then route to the active SIMD level.
#include "apt_attention.h"
#include "apt_stats.h"
#include "cpu_features.h"
#include "flash_attention.h"

namespace apt_fast {
namespace {

void check_io(const AttentionIO& io, bool backward) {
  const AttentionDims& d = io.dims;
  APT_CHECK(d.batch >= 0 && d.heads >= 0 && d.q_len >= 0 && d.kv_len >= 0,
            "attention sizes must be >= 0, got B=" << d.batch << " H=" << d.heads << " T=" << d.q_len
                                                   << " S=" << d.kv_len);
  APT_CHECK(d.head_dim > 0, "head_dim must be > 0, got " << d.head_dim);
  APT_CHECK(io.q.data && io.k.data && io.v.data && io.out.data && io.lse, "q, k, v, out and lse must be non-null");
  APT_CHECK(io.dropout_p >= 0.0f && io.dropout_p < 1.0f, "dropout_p must be in [0, 1), got " << io.dropout_p);
  if (backward)
    APT_CHECK(io.grad_out.data && io.dq.data && io.dk.data && io.dv.data,
              "grad_out, dq, dk and dv must be non-null in the backward");
}

}  // namespace

#define APT_ROUTE(fn, args)                                        \
  switch (active_simd_level()) {                                   \
    case SimdLevel::Avx512: return simd_avx512::fn(args);          \
    case SimdLevel::Avx2: return simd_avx2::fn(args);              \
    default: return simd_scalar::fn(args);                         \
  }

void flash_attention_fwd(const FlashAttentionArgs& args) {
  check_io(args.io, false);
  APT_ROUTE(flash_attention_fwd, args)
}

void flash_attention_bwd(const FlashAttentionArgs& args) {
  check_io(args.io, true);
  APT_ROUTE(flash_attention_bwd, args)
}

namespace {

void check_head_mean(const AptHeadMeanArgs& a, bool backward) {
  APT_CHECK(a.dims.heads > 0 && a.dims.head_dim > 0, "heads and head_dim must be > 0");
  APT_CHECK(a.q.data && a.k.data && a.mean, "q, k and mean must be non-null");
  if (backward) APT_CHECK(a.grad_mean && a.dq.data && a.dk.data, "grad_mean, dq and dk must be non-null");
}

void check_apt(const AptAttentionArgs& a, bool backward) {
  check_io(a.io, backward);
  APT_CHECK(a.f && a.m, "f and m must be non-null");
  if (backward) APT_CHECK(a.grad_f, "grad_f must be non-null in the backward");
}

void check_stats(const AptStatsArgs& a, bool backward) {
  APT_CHECK(a.batch >= 0 && a.q_len >= 0 && a.kv_len >= 0 && a.hidden > 0, "bad sizes for the APT statistics");
  APT_CHECK(a.m && a.w1 && a.b1 && a.w2 && a.r0 && a.stats, "m, the sr weights, r0 and stats must be non-null");
  if (backward) APT_CHECK(a.grad_f && a.grad_m && a.grad_params, "grad_f, grad_m and grad_params must be non-null");
  else APT_CHECK(a.f, "f must be non-null");
}

}  // namespace

void apt_head_mean_fwd(const AptHeadMeanArgs& args) {
  check_head_mean(args, false);
  APT_ROUTE(apt_head_mean_fwd, args)
}

void apt_head_mean_bwd(const AptHeadMeanArgs& args) {
  check_head_mean(args, true);
  APT_ROUTE(apt_head_mean_bwd, args)
}

void apt_attention_fwd(const AptAttentionArgs& args) {
  check_apt(args, false);
  APT_ROUTE(apt_attention_fwd, args)
}

void apt_attention_bwd(const AptAttentionArgs& args) {
  check_apt(args, true);
  APT_ROUTE(apt_attention_bwd, args)
}

void apt_stats_fwd(const AptStatsArgs& args) {
  check_stats(args, false);
  APT_ROUTE(apt_stats_fwd, args)
}

void apt_stats_bwd(const AptStatsArgs& args) {
  check_stats(args, true);
  APT_ROUTE(apt_stats_bwd, args)
}

}  // namespace apt_fast
