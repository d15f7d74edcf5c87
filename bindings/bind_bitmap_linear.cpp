#include <pybind11/pybind11.h>

#include "bindings.h"
#include "bitmap_linear/bitmap_linear.h"

namespace py = pybind11;

namespace apt_fast {
namespace {

template <class T>
T* ptr(uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

Dtype dtype_of(int code) {
  APT_CHECK(code == 0 || code == 1, "dtype code must be 0 (float32) or 1 (bfloat16), got " << code);
  return static_cast<Dtype>(code);
}

BitmapWeight weight_of(int64_t n, int64_t k, uintptr_t bitmap, uintptr_t row_offsets, uintptr_t values,
                       int value_type, uintptr_t scales) {
  APT_CHECK(value_type >= 0 && value_type <= 2,
            "value type code must be 0 (float32), 1 (bfloat16) or 2 (int8), got " << value_type);
  BitmapWeight w;
  w.n = n;
  w.k = k;
  w.bitmap = ptr<const uint64_t>(bitmap);
  w.row_offsets = ptr<const int64_t>(row_offsets);
  w.values = ptr<const void>(values);
  w.value_type = static_cast<ValueType>(value_type);
  w.scales = ptr<const float>(scales);
  return w;
}

}  // namespace

APT_FAST_BINDINGS(bitmap_linear) {
  m.def("bitmap_linear", [](int64_t n, int64_t k, uintptr_t bitmap, uintptr_t row_offsets, uintptr_t values,
                            int value_type, uintptr_t scales, int64_t rows, uintptr_t x, int64_t x_stride, int dtype,
                            uintptr_t bias, uintptr_t y, int64_t y_stride, int num_threads) {
    BitmapLinearArgs a;
    a.w = weight_of(n, k, bitmap, row_offsets, values, value_type, scales);
    a.m = rows;
    a.x = ptr<const void>(x);
    a.x_stride = x_stride;
    a.x_dtype = dtype_of(dtype);
    a.bias = ptr<const float>(bias);
    a.y = ptr<void>(y);
    a.y_stride = y_stride;
    a.num_threads = num_threads;
    py::gil_scoped_release release;
    bitmap_linear(a);
  }, py::arg("n"), py::arg("k"), py::arg("bitmap"), py::arg("row_offsets"), py::arg("values"), py::arg("value_type"),
     py::arg("scales"), py::arg("rows"), py::arg("x"), py::arg("x_stride"), py::arg("dtype"), py::arg("bias"),
     py::arg("y"), py::arg("y_stride"), py::arg("num_threads"),
     "Bitmap sparse linear (csrc/bitmap_linear/bitmap_linear.h): y [rows, n] = x [rows, k] . W^T + bias, W as\n"
     "bitmap [n, ceil(k / 64)] + row_offsets [n + 1] + values (value_type 0 fp32, 1 bf16, 2 int8 with scales [n]);\n"
     "x and y fp32 (dtype 0) or bf16 (1); bias fp32 [n] or 0.");
  m.def("bitmap_linear_backward", [](int64_t n, int64_t k, uintptr_t bitmap, uintptr_t row_offsets, uintptr_t values,
                                     int value_type, uintptr_t scales, int64_t rows, uintptr_t grad_y,
                                     int64_t grad_y_stride, int grad_y_dtype, uintptr_t x, int64_t x_stride,
                                     int x_dtype, uintptr_t grad_x, uintptr_t grad_values, int num_threads) {
    BitmapBackwardArgs a;
    a.w = weight_of(n, k, bitmap, row_offsets, values, value_type, scales);
    a.m = rows;
    a.grad_y = ptr<const void>(grad_y);
    a.grad_y_stride = grad_y_stride;
    a.grad_y_dtype = dtype_of(grad_y_dtype);
    a.x = ptr<const void>(x);
    a.x_stride = x_stride;
    a.x_dtype = dtype_of(x_dtype);
    a.grad_x = ptr<void>(grad_x);
    a.grad_values = ptr<void>(grad_values);
    a.num_threads = num_threads;
    py::gil_scoped_release release;
    bitmap_linear_backward(a);
  }, py::arg("n"), py::arg("k"), py::arg("bitmap"), py::arg("row_offsets"), py::arg("values"), py::arg("value_type"),
     py::arg("scales"), py::arg("rows"), py::arg("grad_y"), py::arg("grad_y_stride"), py::arg("grad_y_dtype"),
     py::arg("x"), py::arg("x_stride"), py::arg("x_dtype"), py::arg("grad_x"), py::arg("grad_values"),
     py::arg("num_threads"),
     "Its backward: grad_x [rows, k] (grad_y's dtype, contiguous; 0: skipped) = grad_y . W and grad_values [nnz]\n"
     "(the values' dtype, fp32 or bf16; 0: skipped) = grad_y^T . x at the kept entries.");
  m.def("bitmap_many_rows", &bitmap_many_rows,
        "Rows of x from which the bitmap kernels use their transposed, many-rows loops.");
  m.def("set_bitmap_many_rows", &set_bitmap_many_rows, py::arg("rows"));
}

}  // namespace apt_fast
