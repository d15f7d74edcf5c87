#include <pybind11/pybind11.h>

#include <type_traits>

#include "attention_views.h"
#include "bindings.h"
#include "flash_attention/flash_attention.h"

namespace py = pybind11;

namespace apt_fast {
namespace {

// The bias as read by the kernels: fp32 (dtype code 0) or bf16 (1).
BiasView bias_view(const BroadcastView& bias, int bias_dtype) {
  BiasView view;
  with_element_type(bias_dtype, [&](auto element) {
    using B = decltype(element);
    if constexpr (std::is_same_v<B, float>) view.f32 = broadcast4<const float>(bias);
    else view.bf16 = broadcast4<const Bf16>(bias);
  });
  return view;
}

}  // namespace

APT_FAST_BINDINGS(flash_attention) {
  m.def(
      "flash_attention_fwd",
      [](const DimsView& dims, int dtype, const HeadView& q, const HeadView& k, const HeadView& v,
         const BroadcastView& bias, int bias_dtype, const BroadcastView& mask, bool causal, float scale,
         float dropout_p, uint64_t seed, const HeadView& out, int64_t lse, int num_threads) {
        const BiasView bias_of = bias_view(bias, bias_dtype);
        with_element_type(dtype, [&](auto element) {
          using T = decltype(element);
          FlashAttentionArgs<T> args;
          args.io = attention_io<T>(dims, q, k, v, scale, dropout_p, seed, out, lse, num_threads);
          args.bias = bias_of;
          args.mask = broadcast4<const uint8_t>(mask);
          args.causal = causal;
          py::gil_scoped_release release;
          flash_attention_fwd(args);
        });
      },
      py::arg("dims"), py::arg("dtype"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("bias"),
      py::arg("bias_dtype"), py::arg("mask"), py::arg("causal"), py::arg("scale"), py::arg("dropout_p"),
      py::arg("seed"), py::arg("out"), py::arg("lse"), py::arg("num_threads"),
      "Flash attention forward: out [B,H,T,d] (q's dtype) and lse [B,H,T] (fp32). dtype: code of q, k, v and out\n"
      "(0 float32, 1 bfloat16: bf16 products, fp32 accumulation and softmax); bias_dtype: the bias's code. Views\n"
      "are (data_ptr, strides...) tuples; see apt_fast/backends/cpu/flash_attention.py.");
  m.def(
      "flash_attention_bwd",
      [](const DimsView& dims, int dtype, const HeadView& q, const HeadView& k, const HeadView& v,
         const BroadcastView& bias, int bias_dtype, const BroadcastView& mask, bool causal, float scale,
         float dropout_p, uint64_t seed, const HeadView& out, int64_t lse, const HeadView& grad_out,
         const HeadView& dq, const HeadView& dk, const HeadView& dv, const BroadcastView& grad_bias,
         int grad_bias_dtype, int num_threads) {
        const BiasView bias_of = bias_view(bias, bias_dtype);
        with_element_type(dtype, [&](auto element) {
          using T = decltype(element);
          FlashAttentionArgs<T> args;
          args.io = attention_io<T>(dims, q, k, v, scale, dropout_p, seed, out, lse, num_threads);
          attention_io_grads(args.io, grad_out, dq, dk, dv);
          args.bias = bias_of;
          args.mask = broadcast4<const uint8_t>(mask);
          args.causal = causal;
          if (grad_bias_dtype == 1) args.grad_bias_bf16 = broadcast4<Bf16>(grad_bias);
          else args.grad_bias = broadcast4<float>(grad_bias);
          py::gil_scoped_release release;
          flash_attention_bwd(args);
        });
      },
      py::arg("dims"), py::arg("dtype"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("bias"),
      py::arg("bias_dtype"), py::arg("mask"), py::arg("causal"), py::arg("scale"), py::arg("dropout_p"),
      py::arg("seed"), py::arg("out"), py::arg("lse"), py::arg("grad_out"), py::arg("dq"), py::arg("dk"),
      py::arg("dv"), py::arg("grad_bias"), py::arg("grad_bias_dtype"), py::arg("num_threads"),
      "Flash attention backward: dq, dk, dv (q's dtype) and, when grad_bias has a pointer, the bias gradient:\n"
      "grad_bias_dtype 0: fp32, summed into a buffer of the bias's own shape (broadcast strides 0); 1: bf16, a\n"
      "contiguous [B,H,T,S] buffer (a bias without broadcast).");
}

}  // namespace apt_fast
