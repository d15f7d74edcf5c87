#include <pybind11/pybind11.h>

#include "bindings.h"
#include "block_linear/block_linear.h"

namespace py = pybind11;

namespace apt_fast {
namespace {

BlockWeight weight_of(int64_t n, int64_t k, int bn, int bk, int values_dtype, int64_t blocks, uintptr_t values,
                      uintptr_t row_offsets, uintptr_t columns) {
  APT_CHECK(values_dtype == 0 || values_dtype == 1,
            "values dtype code must be 0 (float32) or 1 (bfloat16), got " << values_dtype);
  BlockWeight w;
  w.shape.n = n;
  w.shape.k = k;
  w.shape.bn = bn;
  w.shape.bk = bk;
  w.dtype = static_cast<BlockValues>(values_dtype);
  w.blocks = blocks;
  w.values = reinterpret_cast<const void*>(values);
  w.row_offsets = reinterpret_cast<const int64_t*>(row_offsets);
  w.columns = reinterpret_cast<const int32_t*>(columns);
  return w;
}

Dtype dtype_of(int code) {
  APT_CHECK(code == 0 || code == 1, "dtype code must be 0 (float32) or 1 (bfloat16), got " << code);
  return static_cast<Dtype>(code);
}

}  // namespace

APT_FAST_BINDINGS(block_linear) {
  m.def("block_linear", [](int64_t rows, uintptr_t x, int64_t x_stride, int dtype, int64_t n, int64_t k, int bn,
                           int bk, int values_dtype, int64_t blocks, uintptr_t values, uintptr_t row_offsets,
                           uintptr_t columns, uintptr_t bias, uintptr_t y, int64_t y_stride, int num_threads) {
    BlockLinearArgs a;
    a.w = weight_of(n, k, bn, bk, values_dtype, blocks, values, row_offsets, columns);
    a.m = rows;
    a.x = reinterpret_cast<const void*>(x);
    a.x_stride = x_stride;
    a.x_dtype = dtype_of(dtype);
    a.bias = reinterpret_cast<const float*>(bias);
    a.y = reinterpret_cast<void*>(y);
    a.y_stride = y_stride;
    a.num_threads = num_threads;
    py::gil_scoped_release release;
    block_linear(a);
  }, py::arg("rows"), py::arg("x"), py::arg("x_stride"), py::arg("dtype"), py::arg("n"), py::arg("k"),
     py::arg("bn"), py::arg("bk"), py::arg("values_dtype"), py::arg("blocks"), py::arg("values"),
     py::arg("row_offsets"), py::arg("columns"), py::arg("bias"), py::arg("y"), py::arg("y_stride"),
     py::arg("num_threads"),
     "Block-sparse linear: y [rows, n] = x [rows, k] . W^T + bias, W kept as (bn, bk) blocks in block-CSR\n"
     "(csrc/block_linear/block_linear.h); x and y fp32 (dtype 0) or bf16 (1); values fp32 (0) or bf16 (1)\n"
     "[blocks, bn, bk]; row_offsets int64 [n / bn + 1]; columns int32 [blocks]; bias fp32 [n] or 0.");
  m.def("block_linear_backward", [](int64_t rows, uintptr_t grad_y, int64_t grad_stride, int grad_dtype,
                                    uintptr_t x, int64_t x_stride, int x_dtype, int64_t n, int64_t k, int bn, int bk,
                                    int values_dtype, int64_t blocks, uintptr_t values, uintptr_t row_offsets,
                                    uintptr_t columns, uintptr_t grad_x, uintptr_t grad_values, int num_threads) {
    BlockBackwardArgs a;
    a.w = weight_of(n, k, bn, bk, values_dtype, blocks, values, row_offsets, columns);
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
    block_linear_backward(a);
  }, py::arg("rows"), py::arg("grad_y"), py::arg("grad_stride"), py::arg("grad_dtype"), py::arg("x"),
     py::arg("x_stride"), py::arg("x_dtype"), py::arg("n"), py::arg("k"), py::arg("bn"), py::arg("bk"),
     py::arg("values_dtype"), py::arg("blocks"), py::arg("values"), py::arg("row_offsets"), py::arg("columns"),
     py::arg("grad_x"), py::arg("grad_values"), py::arg("num_threads"),
     "Block-sparse linear backward, fp32: grad_x [rows, k] = grad_y . W (0: skipped) and grad_values\n"
     "[blocks, bn, bk], dW on the kept blocks (0: skipped).");
  m.def("block_amx_min_rows", &block_amx_min_rows, "Rows from which the block kernel uses AMX (where the CPU has it).");
  m.def("set_block_amx_min_rows", &set_block_amx_min_rows, py::arg("rows"),
        "Move the AMX crossover (tests, benchmarks).");
}

}  // namespace apt_fast
