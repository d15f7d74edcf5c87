#include <pybind11/pybind11.h>

#include "bindings.h"
#include "layer_fusions/layer_fusions.h"

namespace py = pybind11;

namespace apt_fast {
namespace {

Dtype dtype_from_code(int code) {
  APT_CHECK(code == 0 || code == 1, "dtype code must be 0 (float32) or 1 (bfloat16), got " << code);
  return static_cast<Dtype>(code);
}

template <class T>
T* pointer(uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

AddLayerNormArgs norm_args(uintptr_t x, uintptr_t residual, uintptr_t weight, uintptr_t bias, int dtype, int64_t rows,
                           int64_t width, float eps, uintptr_t mean, uintptr_t rstd, int num_threads) {
  AddLayerNormArgs args;
  args.x = pointer<const void>(x);
  args.residual = pointer<const void>(residual);
  args.weight = pointer<const float>(weight);
  args.bias = pointer<const float>(bias);
  args.dtype = dtype_from_code(dtype);
  args.rows = rows;
  args.width = width;
  args.eps = eps;
  args.mean = pointer<float>(mean);
  args.rstd = pointer<float>(rstd);
  args.num_threads = num_threads;
  return args;
}

BiasGeluArgs gelu_args(uintptr_t x, uintptr_t bias, int dtype, int64_t rows, int64_t width, int num_threads) {
  BiasGeluArgs args;
  args.x = pointer<const void>(x);
  args.bias = pointer<const float>(bias);
  args.dtype = dtype_from_code(dtype);
  args.rows = rows;
  args.width = width;
  args.num_threads = num_threads;
  return args;
}

}  // namespace

APT_FAST_BINDINGS(layer_fusions) {
  m.def(
      "add_layer_norm_fwd",
      [](uintptr_t x, uintptr_t residual, uintptr_t weight, uintptr_t bias, int dtype, int64_t rows, int64_t width,
         float eps, uintptr_t out, uintptr_t mean, uintptr_t rstd, int num_threads) {
        AddLayerNormArgs args = norm_args(x, residual, weight, bias, dtype, rows, width, eps, mean, rstd, num_threads);
        args.out = pointer<void>(out);
        py::gil_scoped_release release;
        add_layer_norm_fwd(args);
      },
      py::arg("x"), py::arg("residual"), py::arg("weight"), py::arg("bias"), py::arg("dtype"), py::arg("rows"),
      py::arg("width"), py::arg("eps"), py::arg("out"), py::arg("mean"), py::arg("rstd"), py::arg("num_threads"),
      "out = LayerNorm(x + residual) * weight + bias per row, with the row mean and 1/std (fp32) for the backward.\n"
      "Pointers are tensor data_ptr() values; see apt_fast/backends/cpu/layer_fusions.py.");
  m.def(
      "add_layer_norm_bwd",
      [](uintptr_t grad_out, uintptr_t x, uintptr_t residual, uintptr_t weight, uintptr_t bias, int dtype,
         int64_t rows, int64_t width, uintptr_t mean, uintptr_t rstd, uintptr_t grad_sum, uintptr_t grad_weight,
         uintptr_t grad_bias, int num_threads) {
        AddLayerNormArgs args = norm_args(x, residual, weight, bias, dtype, rows, width, 0.0f, mean, rstd, num_threads);
        args.grad_out = pointer<const void>(grad_out);
        args.grad_sum = pointer<void>(grad_sum);
        args.grad_weight = pointer<float>(grad_weight);
        args.grad_bias = pointer<float>(grad_bias);
        py::gil_scoped_release release;
        add_layer_norm_bwd(args);
      },
      py::arg("grad_out"), py::arg("x"), py::arg("residual"), py::arg("weight"), py::arg("bias"), py::arg("dtype"),
      py::arg("rows"), py::arg("width"), py::arg("mean"), py::arg("rstd"), py::arg("grad_sum"),
      py::arg("grad_weight"), py::arg("grad_bias"), py::arg("num_threads"),
      "Gradients of add_layer_norm_fwd: of x + residual ([rows, width], dtype), of weight and of bias (fp32).");
  m.def(
      "bias_gelu_fwd",
      [](uintptr_t x, uintptr_t bias, int dtype, int64_t rows, int64_t width, uintptr_t out, int num_threads) {
        BiasGeluArgs args = gelu_args(x, bias, dtype, rows, width, num_threads);
        args.out = pointer<void>(out);
        py::gil_scoped_release release;
        bias_gelu_fwd(args);
      },
      py::arg("x"), py::arg("bias"), py::arg("dtype"), py::arg("rows"), py::arg("width"), py::arg("out"),
      py::arg("num_threads"), "out = GELU(x + bias) (exact, erf) per row; bias is fp32.");
  m.def(
      "bias_gelu_bwd",
      [](uintptr_t grad_out, uintptr_t x, uintptr_t bias, int dtype, int64_t rows, int64_t width, uintptr_t grad_x,
         uintptr_t grad_bias, int num_threads) {
        BiasGeluArgs args = gelu_args(x, bias, dtype, rows, width, num_threads);
        args.grad_out = pointer<const void>(grad_out);
        args.grad_x = pointer<void>(grad_x);
        args.grad_bias = pointer<float>(grad_bias);
        py::gil_scoped_release release;
        bias_gelu_bwd(args);
      },
      py::arg("grad_out"), py::arg("x"), py::arg("bias"), py::arg("dtype"), py::arg("rows"), py::arg("width"),
      py::arg("grad_x"), py::arg("grad_bias"), py::arg("num_threads"),
      "Gradients of bias_gelu_fwd: of x ([rows, width], dtype) and of bias (fp32, summed over the rows).");
}

}  // namespace apt_fast
