#include <pybind11/pybind11.h>

#include "apt_attention/apt_attention.h"
#include "apt_attention/apt_stats.h"
#include "attention_views.h"
#include "bindings.h"

namespace py = pybind11;

namespace apt_fast {
namespace {

AptMasks apt_masks(int64_t key_pad, const BroadcastView& mask) {
  return AptMasks{reinterpret_cast<const float*>(key_pad), broadcast4<const float>(mask)};
}

template <class T>
AptHeadMeanArgs<T> head_mean_args(const DimsView& dims, const HeadView& q, const HeadView& k, float scale,
                                  int64_t key_pad, const BroadcastView& mask, int64_t mean, int num_threads) {
  AptHeadMeanArgs<T> args;
  args.dims = attention_dims(dims);
  args.q = head_tensor<const T>(q);
  args.k = head_tensor<const T>(k);
  args.scale = scale;
  args.masks = apt_masks(key_pad, mask);
  args.mean = reinterpret_cast<float*>(mean);
  args.num_threads = num_threads;
  return args;
}

// sizes = (B, T, S, Hd); params = data pointers of (m, w1, b1, w2, b2, tau); outputs likewise.
using StatsSizes = std::array<int64_t, 4>;
using StatsParams = std::array<int64_t, 6>;

AptStatsArgs stats_args(const StatsSizes& sizes, const StatsParams& params, const BroadcastView& mask, float scale,
                        bool quantile, int64_t r0, int64_t stats, int num_threads) {
  AptStatsArgs args;
  args.batch = sizes[0], args.q_len = sizes[1], args.kv_len = sizes[2], args.hidden = sizes[3];
  args.m = reinterpret_cast<const float*>(params[0]);
  args.w1 = reinterpret_cast<const float*>(params[1]);
  args.b1 = reinterpret_cast<const float*>(params[2]);
  args.w2 = reinterpret_cast<const float*>(params[3]);
  args.b2 = *reinterpret_cast<const float*>(params[4]);
  args.tau = *reinterpret_cast<const float*>(params[5]);
  args.mask = broadcast4<const float>(mask);
  args.scale = scale;
  args.quantile = quantile;
  args.r0 = reinterpret_cast<float*>(r0);
  args.stats = reinterpret_cast<double*>(stats);
  args.num_threads = num_threads;
  return args;
}

}  // namespace

APT_FAST_BINDINGS(apt_attention) {
  m.attr("apt_stats_size") = static_cast<int>(kStatsSize);
  m.def(
      "apt_stats_fwd",
      [](const StatsSizes& sizes, const StatsParams& params, const BroadcastView& mask, float scale, bool quantile,
         int64_t f, int64_t r0, int64_t stats, int num_threads) {
        AptStatsArgs args = stats_args(sizes, params, mask, scale, quantile, r0, stats, num_threads);
        args.f = reinterpret_cast<float*>(f);
        py::gil_scoped_release release;
        apt_stats_fwd(args);
      },
      py::arg("sizes"), py::arg("params"), py::arg("mask"), py::arg("scale"), py::arg("quantile"), py::arg("f"),
      py::arg("r0"), py::arg("stats"), py::arg("num_threads"),
      "APT statistics T3-T16: M [B,T,S] -> F [B,T,S], saving R0 [B,T,S] and the per-batch scalars (float64).");
  m.def(
      "apt_stats_bwd",
      [](const StatsSizes& sizes, const StatsParams& params, const BroadcastView& mask, float scale, bool quantile,
         int64_t r0, int64_t stats, int64_t grad_f, int64_t grad_m, int64_t grad_params, int num_threads) {
        AptStatsArgs args = stats_args(sizes, params, mask, scale, quantile, r0, stats, num_threads);
        args.grad_f = reinterpret_cast<const float*>(grad_f);
        args.grad_m = reinterpret_cast<float*>(grad_m);
        args.grad_params = reinterpret_cast<float*>(grad_params);
        py::gil_scoped_release release;
        apt_stats_bwd(args);
      },
      py::arg("sizes"), py::arg("params"), py::arg("mask"), py::arg("scale"), py::arg("quantile"), py::arg("r0"),
      py::arg("stats"), py::arg("grad_f"), py::arg("grad_m"), py::arg("grad_params"), py::arg("num_threads"),
      "Backward of apt_stats_fwd: dM [B,T,S] and [dw1 | db1 | dw2 | db2 | dtau] (3 Hd + 2 floats).");
  m.def(
      "apt_head_mean_fwd",
      [](const DimsView& dims, int dtype, const HeadView& q, const HeadView& k, float scale, int64_t key_pad,
         const BroadcastView& mask, int64_t mean, int num_threads) {
        with_element_type(dtype, [&](auto element) {
          using T = decltype(element);
          AptHeadMeanArgs<T> args = head_mean_args<T>(dims, q, k, scale, key_pad, mask, mean, num_threads);
          py::gil_scoped_release release;
          apt_head_mean_fwd(args);
        });
      },
      py::arg("dims"), py::arg("dtype"), py::arg("q"), py::arg("k"), py::arg("scale"), py::arg("key_pad"),
      py::arg("mask"), py::arg("mean"), py::arg("num_threads"),
      "APT head mean M [B,T,S] (fp32) of the sanitised per-head scores (T1, T2). dtype: code of q and k (0 float32,\n"
      "1 bfloat16). key_pad: [B,S] additive 0/-inf or 0.");
  m.def(
      "apt_head_mean_bwd",
      [](const DimsView& dims, int dtype, const HeadView& q, const HeadView& k, float scale, int64_t key_pad,
         const BroadcastView& mask, int64_t grad_mean, const HeadView& dq, const HeadView& dk, int num_threads) {
        with_element_type(dtype, [&](auto element) {
          using T = decltype(element);
          AptHeadMeanArgs<T> args = head_mean_args<T>(dims, q, k, scale, key_pad, mask, grad_mean, num_threads);
          args.grad_mean = reinterpret_cast<const float*>(grad_mean);
          args.dq = head_tensor<T>(dq);
          args.dk = head_tensor<T>(dk);
          py::gil_scoped_release release;
          apt_head_mean_bwd(args);
        });
      },
      py::arg("dims"), py::arg("dtype"), py::arg("q"), py::arg("k"), py::arg("scale"), py::arg("key_pad"),
      py::arg("mask"), py::arg("grad_mean"), py::arg("dq"), py::arg("dk"), py::arg("num_threads"),
      "Gradients of the APT head mean for q and k (their dtype), given dM [B,T,S] (fp32).");
  m.def(
      "apt_attention_fwd",
      [](const DimsView& dims, int dtype, const HeadView& q, const HeadView& k, const HeadView& v, float scale,
         int64_t key_pad, const BroadcastView& mask, int64_t f, int64_t mean, float dropout_p, uint64_t seed,
         const HeadView& out, int64_t lse, int num_threads) {
        with_element_type(dtype, [&](auto element) {
          using T = decltype(element);
          AptAttentionArgs<T> args;
          args.io = attention_io<T>(dims, q, k, v, scale, dropout_p, seed, out, lse, num_threads);
          args.masks = apt_masks(key_pad, mask);
          args.f = reinterpret_cast<const float*>(f);
          args.m = reinterpret_cast<const float*>(mean);
          py::gil_scoped_release release;
          apt_attention_fwd(args);
        });
      },
      py::arg("dims"), py::arg("dtype"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("scale"),
      py::arg("key_pad"), py::arg("mask"), py::arg("f"), py::arg("mean"), py::arg("dropout_p"), py::arg("seed"),
      py::arg("out"), py::arg("lse"), py::arg("num_threads"),
      "APT final attention (T17-T19, softmax, dropout, P.V) over the shared F and M [B,T,S] (fp32): out and lse.\n"
      "dtype: code of q, k, v and out (0 float32, 1 bfloat16).");
  m.def(
      "apt_attention_bwd",
      [](const DimsView& dims, int dtype, const HeadView& q, const HeadView& k, const HeadView& v, float scale,
         int64_t key_pad, const BroadcastView& mask, int64_t f, int64_t mean, float dropout_p, uint64_t seed,
         const HeadView& out, int64_t lse, const HeadView& grad_out, const HeadView& dq, const HeadView& dk,
         const HeadView& dv, int64_t grad_f, int num_threads) {
        with_element_type(dtype, [&](auto element) {
          using T = decltype(element);
          AptAttentionArgs<T> args;
          args.io = attention_io<T>(dims, q, k, v, scale, dropout_p, seed, out, lse, num_threads);
          attention_io_grads(args.io, grad_out, dq, dk, dv);
          args.masks = apt_masks(key_pad, mask);
          args.f = reinterpret_cast<const float*>(f);
          args.m = reinterpret_cast<const float*>(mean);
          args.grad_f = reinterpret_cast<float*>(grad_f);
          py::gil_scoped_release release;
          apt_attention_bwd(args);
        });
      },
      py::arg("dims"), py::arg("dtype"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("scale"),
      py::arg("key_pad"), py::arg("mask"), py::arg("f"), py::arg("mean"), py::arg("dropout_p"), py::arg("seed"),
      py::arg("out"), py::arg("lse"), py::arg("grad_out"), py::arg("dq"), py::arg("dk"), py::arg("dv"),
      py::arg("grad_f"), py::arg("num_threads"),
      "Backward of apt_attention_fwd: dq, dk, dv (q's dtype) and dF [B,T,S] (fp32; dM = -0.2 dF).");
}

}  // namespace apt_fast
