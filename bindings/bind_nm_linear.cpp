#include <pybind11/pybind11.h>

#include "bindings.h"
#include "nm_linear/nm_linear.h"

namespace py = pybind11;

namespace apt_fast {
namespace {

NmWeight weight_of(int64_t n, int64_t k, int keep, int group, int values_dtype, uintptr_t values, uintptr_t indices,
                   uintptr_t scales) {
  APT_CHECK(values_dtype >= 0 && values_dtype <= 2,
            "values dtype code must be 0 (float32), 1 (bfloat16) or 2 (int8), got " << values_dtype);
  NmWeight w;
  w.shape.n = n;
  w.shape.k = k;
  w.shape.keep = keep;
  w.shape.group = group;
  w.dtype = static_cast<NmValues>(values_dtype);
  w.values = reinterpret_cast<const void*>(values);
  w.indices = reinterpret_cast<const uint8_t*>(indices);
  w.scales = reinterpret_cast<const float*>(scales);
  return w;
}

Dtype dtype_of(int code) {
  APT_CHECK(code == 0 || code == 1, "dtype code must be 0 (float32) or 1 (bfloat16), got " << code);
  return static_cast<Dtype>(code);
}

}  // namespace

APT_FAST_BINDINGS(nm_linear) {
  m.def("nm_linear", [](int64_t rows, uintptr_t x, int64_t x_stride, int dtype, int64_t n, int64_t k, int keep,
                        int group, int values_dtype, uintptr_t values, uintptr_t indices, uintptr_t scales,
                        uintptr_t bias, uintptr_t y, int64_t y_stride, int num_threads) {
    NmLinearArgs a;
    a.w = weight_of(n, k, keep, group, values_dtype, values, indices, scales);
    a.m = rows;
    a.x = reinterpret_cast<const void*>(x);
    a.x_stride = x_stride;
    a.x_dtype = dtype_of(dtype);
    a.bias = reinterpret_cast<const float*>(bias);
    a.y = reinterpret_cast<void*>(y);
    a.y_stride = y_stride;
    a.num_threads = num_threads;
    py::gil_scoped_release release;
    nm_linear(a);
  }, py::arg("rows"), py::arg("x"), py::arg("x_stride"), py::arg("dtype"), py::arg("n"), py::arg("k"),
     py::arg("keep"), py::arg("group"), py::arg("values_dtype"), py::arg("values"), py::arg("indices"),
     py::arg("scales"), py::arg("bias"), py::arg("y"), py::arg("y_stride"), py::arg("num_threads"),
     "N:M sparse linear: y [rows, n] = x [rows, k] . W^T + bias, W keeping `keep` of every `group` inputs\n"
     "(csrc/nm_linear/nm_linear.h); x and y fp32 (dtype 0) or bf16 (1); values fp32 (0), bf16 (1) or int8 (2,\n"
     "with scales fp32 [n]); bias fp32 [n] or 0.");
  m.def("nm_linear_backward", [](int64_t rows, uintptr_t grad_y, int64_t grad_stride, int grad_dtype, uintptr_t x,
                                 int64_t x_stride, int x_dtype, int64_t n, int64_t k, int keep, int group,
                                 int values_dtype, uintptr_t values, uintptr_t indices, uintptr_t scales,
                                 uintptr_t grad_x, uintptr_t grad_values, int num_threads) {
    NmBackwardArgs a;
    a.w = weight_of(n, k, keep, group, values_dtype, values, indices, scales);
    a.m = rows;
    a.grad_y = reinterpret_cast<const void*>(grad_y);
    a.grad_stride = grad_stride;
    a.grad_dtype = dtype_of(grad_dtype);
    a.x = reinterpret_cast<const void*>(x);
    a.x_stride = x_stride;
    a.x_dtype = dtype_of(x_dtype);
    a.grad_x = reinterpret_cast<float*>(grad_x);
    a.grad_values = reinterpret_cast<float*>(grad_values);
    a.num_threads = num_threads;
    py::gil_scoped_release release;
    nm_linear_backward(a);
  }, py::arg("rows"), py::arg("grad_y"), py::arg("grad_stride"), py::arg("grad_dtype"), py::arg("x"),
     py::arg("x_stride"), py::arg("x_dtype"), py::arg("n"), py::arg("k"), py::arg("keep"), py::arg("group"),
     py::arg("values_dtype"), py::arg("values"), py::arg("indices"), py::arg("scales"), py::arg("grad_x"),
     py::arg("grad_values"), py::arg("num_threads"),
     "N:M sparse linear backward, fp32: grad_x [rows, k] = grad_y . W (0: skipped) and grad_values [n, kept],\n"
     "the masked dW (0: skipped; not for int8 values).");
  m.def("nm_amx_min_rows", &nm_amx_min_rows, "Rows from which the N:M kernel uses AMX (where the CPU has it).");
  m.def("set_nm_amx_min_rows", &set_nm_amx_min_rows, py::arg("rows"), "Move the AMX crossover (tests, benchmarks).");
}

}  // namespace apt_fast
