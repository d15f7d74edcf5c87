// APT attention's entry points (head mean, statistics, final attention): validate the views, then route
// to the kernel of the active tier.
#include "apt_attention/apt_attention.h"
#include "apt_attention/apt_stats.h"

namespace apt_fast {
namespace {

template <class T>
void check_head_mean(const AptHeadMeanArgs<T>& a, bool backward) {
  APT_CHECK(a.dims.heads > 0 && a.dims.head_dim > 0, "heads and head_dim must be > 0");
  APT_CHECK(a.q.data && a.k.data && a.mean, "q, k and mean must be non-null");
  if (backward) APT_CHECK(a.grad_mean && a.dq.data && a.dk.data, "grad_mean, dq and dk must be non-null");
}

template <class T>
void check_apt(const AptAttentionArgs<T>& a, bool backward) {
  check_attention_io(a.io, backward);
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

template <class T>
void apt_head_mean_fwd(const AptHeadMeanArgs<T>& args) {
  check_head_mean(args, false);
  APT_FAST_ROUTE(apt_head_mean_fwd, args);
}

template <class T>
void apt_head_mean_bwd(const AptHeadMeanArgs<T>& args) {
  check_head_mean(args, true);
  APT_FAST_ROUTE(apt_head_mean_bwd, args);
}

template <class T>
void apt_attention_fwd(const AptAttentionArgs<T>& args) {
  check_apt(args, false);
  APT_FAST_ROUTE(apt_attention_fwd, args);
}

template <class T>
void apt_attention_bwd(const AptAttentionArgs<T>& args) {
  check_apt(args, true);
  APT_FAST_ROUTE(apt_attention_bwd, args);
}

#define APT_FAST_INSTANTIATE(T)                                  \
  template void apt_head_mean_fwd(const AptHeadMeanArgs<T>&);    \
  template void apt_head_mean_bwd(const AptHeadMeanArgs<T>&);    \
  template void apt_attention_fwd(const AptAttentionArgs<T>&);   \
  template void apt_attention_bwd(const AptAttentionArgs<T>&);
APT_FAST_INSTANTIATE(float)
APT_FAST_INSTANTIATE(Bf16)
#undef APT_FAST_INSTANTIATE

void apt_stats_fwd(const AptStatsArgs& args) {
  check_stats(args, false);
  APT_FAST_ROUTE(apt_stats_fwd, args);
}

void apt_stats_bwd(const AptStatsArgs& args) {
  check_stats(args, true);
  APT_FAST_ROUTE(apt_stats_bwd, args);
}

}  // namespace apt_fast
