#include <pybind11/pybind11.h>

#include "attention_views.h"
#include "bindings.h"
#include "flash_attention/flash_attention.h"

namespace py = pybind11;

namespace apt_fast {

APT_FAST_BINDINGS(flash_attention) {
  m.def(
      "flash_attention_fwd",
      [](const DimsView& dims, const HeadView& q, const HeadView& k, const HeadView& v, const BroadcastView& bias,
         const BroadcastView& mask, bool causal, float scale, float dropout_p, uint64_t seed, const HeadView& out,
         int64_t lse, int num_threads) {
        FlashAttentionArgs args;
        args.io = attention_io(dims, q, k, v, scale, dropout_p, seed, out, lse, num_threads);
        args.bias = broadcast4<const float>(bias);
        args.mask = broadcast4<const uint8_t>(mask);
        args.causal = causal;
        py::gil_scoped_release release;
        flash_attention_fwd(args);
      },
      py::arg("dims"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("bias"), py::arg("mask"), py::arg("causal"),
      py::arg("scale"), py::arg("dropout_p"), py::arg("seed"), py::arg("out"), py::arg("lse"), py::arg("num_threads"),
      "Flash attention forward (fp32): out [B,H,T,d] and lse [B,H,T]. Views are (data_ptr, strides...) tuples;\n"
      "see apt_fast/backends/cpu/flash_attention.py.");
  m.def(
      "flash_attention_bwd",
      [](const DimsView& dims, const HeadView& q, const HeadView& k, const HeadView& v, const BroadcastView& bias,
         const BroadcastView& mask, bool causal, float scale, float dropout_p, uint64_t seed, const HeadView& out,
         int64_t lse, const HeadView& grad_out, const HeadView& dq, const HeadView& dk, const HeadView& dv,
         const BroadcastView& grad_bias, int num_threads) {
        FlashAttentionArgs args;
        args.io = attention_io(dims, q, k, v, scale, dropout_p, seed, out, lse, num_threads);
        attention_io_grads(args.io, grad_out, dq, dk, dv);
        args.bias = broadcast4<const float>(bias);
        args.mask = broadcast4<const uint8_t>(mask);
        args.causal = causal;
        args.grad_bias = broadcast4<float>(grad_bias);
        py::gil_scoped_release release;
        flash_attention_bwd(args);
      },
      py::arg("dims"), py::arg("q"), py::arg("k"), py::arg("v"), py::arg("bias"), py::arg("mask"), py::arg("causal"),
      py::arg("scale"), py::arg("dropout_p"), py::arg("seed"), py::arg("out"), py::arg("lse"), py::arg("grad_out"),
      py::arg("dq"), py::arg("dk"), py::arg("dv"), py::arg("grad_bias"), py::arg("num_threads"),
      "Flash attention backward (fp32): dq, dk, dv and, when grad_bias has a pointer, the bias gradient summed\n"
      "into a zero-filled buffer of the bias's own shape (broadcast strides 0).");
}

}  // namespace apt_fast
