#include <pybind11/pybind11.h>

#include "bindings.h"
#include "quantized_linear/quantized_linear.h"

namespace py = pybind11;

namespace apt_fast {
namespace {

QuantizedShape shape_of(int64_t n, int64_t k, int64_t group_size) {
  QuantizedShape s;
  s.n = n;
  s.k = k;
  s.group_size = group_size;
  APT_CHECK(n > 0 && k > 0 && group_size > 0 && k % group_size == 0,
            "bad quantized shape: out_features " << n << ", in_features " << k << ", group_size " << group_size);
  return s;
}

CodeFormat code_format(int format) {
  APT_CHECK(format == 1 || format == 2, "FP8 format code must be 1 (e4m3) or 2 (e5m2), got " << format);
  return static_cast<CodeFormat>(format);
}

Dtype dtype_of(int code) {
  APT_CHECK(code == 0 || code == 1, "dtype code must be 0 (float32) or 1 (bfloat16), got " << code);
  return static_cast<Dtype>(code);
}

template <class T>
T* ptr(uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

}  // namespace

APT_FAST_BINDINGS(quantized_linear) {
  m.def("pack_int8_panels", [](uintptr_t q, int64_t n, int64_t k, int64_t group_size, uintptr_t panels,
                               uintptr_t compensation, int num_threads) {
    const QuantizedShape s = shape_of(n, k, group_size);
    py::gil_scoped_release release;
    pack_int8_panels(s, ptr<const int8_t>(q), ptr<int8_t>(panels), ptr<int32_t>(compensation), num_threads);
  }, py::arg("q"), py::arg("n"), py::arg("k"), py::arg("group_size"), py::arg("panels"), py::arg("compensation"),
     py::arg("num_threads"),
     "q [n, k] int8 -> Int8Panels [np * kp] and compensation [groups, np] int32 (csrc/quantized_linear).");
  m.def("unpack_int8_panels", [](uintptr_t panels, int64_t n, int64_t k, uintptr_t q, int num_threads) {
    const QuantizedShape s = shape_of(n, k, k);
    py::gil_scoped_release release;
    unpack_int8_panels(s, ptr<const int8_t>(panels), ptr<int8_t>(q), num_threads);
  }, py::arg("panels"), py::arg("n"), py::arg("k"), py::arg("q"), py::arg("num_threads"));
  m.def("pack_code_panels", [](uintptr_t codes, int64_t n, int64_t k, uintptr_t panels, int num_threads) {
    const QuantizedShape s = shape_of(n, k, k);
    py::gil_scoped_release release;
    pack_code_panels(s, ptr<const uint8_t>(codes), ptr<uint8_t>(panels), num_threads);
  }, py::arg("codes"), py::arg("n"), py::arg("k"), py::arg("panels"), py::arg("num_threads"),
     "codes [n, k] FP8 bytes -> CodePanels [np * kp].");
  m.def("unpack_code_panels", [](uintptr_t panels, int64_t n, int64_t k, uintptr_t codes, int num_threads) {
    const QuantizedShape s = shape_of(n, k, k);
    py::gil_scoped_release release;
    unpack_code_panels(s, ptr<const uint8_t>(panels), ptr<uint8_t>(codes), num_threads);
  }, py::arg("panels"), py::arg("n"), py::arg("k"), py::arg("codes"), py::arg("num_threads"));
  m.def("pack_scales", [](uintptr_t scales, int64_t n, int64_t k, int64_t group_size, uintptr_t packed) {
    pack_scales(shape_of(n, k, group_size), ptr<const float>(scales), ptr<float>(packed));
  }, py::arg("scales"), py::arg("n"), py::arg("k"), py::arg("group_size"), py::arg("packed"),
     "scales [n, groups] fp32 -> [groups, np] (zero past n).");
  m.def("int8_linear", [](int activation_bits, int64_t rows, uintptr_t x, int64_t x_stride, int dtype, int64_t n, int64_t k,
                          int64_t group_size, uintptr_t panels, uintptr_t compensation, uintptr_t scales,
                          uintptr_t bias, uintptr_t y, int64_t y_stride, int num_threads) {
    Int8LinearArgs a;
    a.shape = shape_of(n, k, group_size);
    a.activation_bits = activation_bits;
    a.m = rows;
    a.x = ptr<const void>(x);
    a.x_stride = x_stride;
    a.x_dtype = dtype_of(dtype);
    a.panels = ptr<const int8_t>(panels);
    a.compensation = ptr<const int32_t>(compensation);
    a.scales = ptr<const float>(scales);
    a.bias = ptr<const float>(bias);
    a.y = ptr<void>(y);
    a.y_stride = y_stride;
    a.num_threads = num_threads;
    py::gil_scoped_release release;
    int8_linear(a);
  }, py::arg("activation_bits"), py::arg("rows"), py::arg("x"), py::arg("x_stride"), py::arg("dtype"), py::arg("n"),
     py::arg("k"), py::arg("group_size"), py::arg("panels"), py::arg("compensation"), py::arg("scales"),
     py::arg("bias"), py::arg("y"), py::arg("y_stride"), py::arg("num_threads"),
     "Int8-weight linear: y [rows, n] from x [rows, k] quantized per row to activation_bits (8: W8A8 dynamic,\n"
     "16: weight-only), with the fp32 epilogue of csrc/quantized_linear/quantized_linear.h; x and y fp32 (dtype 0)\n"
     "or bf16 (1); bias fp32 [n] or 0.");
  m.def("code_linear", [](int format, int64_t rows, uintptr_t x, int64_t x_stride, int dtype, int64_t n, int64_t k,
                          int64_t group_size, uintptr_t panels, uintptr_t scales, uintptr_t bias, uintptr_t y,
                          int64_t y_stride, int num_threads) {
    CodeLinearArgs a;
    a.shape = shape_of(n, k, group_size);
    a.format = code_format(format);
    a.m = rows;
    a.x = ptr<const void>(x);
    a.x_stride = x_stride;
    a.x_dtype = dtype_of(dtype);
    a.panels = ptr<const uint8_t>(panels);
    a.scales = ptr<const float>(scales);
    a.bias = ptr<const float>(bias);
    a.y = ptr<void>(y);
    a.y_stride = y_stride;
    a.num_threads = num_threads;
    py::gil_scoped_release release;
    code_linear(a);
  }, py::arg("format"), py::arg("rows"), py::arg("x"), py::arg("x_stride"), py::arg("dtype"), py::arg("n"),
     py::arg("k"), py::arg("group_size"), py::arg("panels"), py::arg("scales"), py::arg("bias"), py::arg("y"),
     py::arg("y_stride"), py::arg("num_threads"),
     "FP8 weight-only linear, bf16 arithmetic: y [rows, n] = bf16(x) . decode(codes)^T * scales + bias.");
  m.def("fp8_quantize", [](int format, int64_t rows, int64_t cols, int64_t group_size, uintptr_t x, int64_t x_stride,
                           int dtype, uintptr_t scales, bool saturate, uintptr_t codes, int num_threads) {
    Fp8QuantizeArgs a;
    a.format = code_format(format);
    a.rows = rows;
    a.cols = cols;
    a.group_size = group_size;
    a.x = ptr<const void>(x);
    a.x_stride = x_stride;
    a.x_dtype = dtype_of(dtype);
    a.scales = ptr<const float>(scales);
    a.saturate = saturate;
    a.codes = ptr<uint8_t>(codes);
    a.num_threads = num_threads;
    py::gil_scoped_release release;
    fp8_quantize(a);
  }, py::arg("format"), py::arg("rows"), py::arg("cols"), py::arg("group_size"), py::arg("x"), py::arg("x_stride"),
     py::arg("dtype"), py::arg("scales"), py::arg("saturate"), py::arg("codes"), py::arg("num_threads"),
     "codes [rows, cols] = FP8(x / scales per group of columns), torch's round-to-nearest-even, bit for bit.");
  m.def("dequantize_int8_panels", [](uintptr_t panels, int64_t n, int64_t k, int64_t group_size, uintptr_t scales,
                                     uintptr_t rows, int64_t count, uintptr_t out, int num_threads) {
    const QuantizedShape s = shape_of(n, k, group_size);
    py::gil_scoped_release release;
    dequantize_int8_panels(s, ptr<const int8_t>(panels), ptr<const float>(scales), ptr<const int64_t>(rows), count,
                           ptr<float>(out), num_threads);
  }, py::arg("panels"), py::arg("n"), py::arg("k"), py::arg("group_size"), py::arg("scales"), py::arg("rows"),
     py::arg("count"), py::arg("out"), py::arg("num_threads"),
     "out [count, k] fp32 = the listed rows of the int8 layer, dequantized (scales packed [groups, np]).");
  m.def("dequantize_code_panels", [](int format, uintptr_t panels, int64_t n, int64_t k, int64_t group_size,
                                     uintptr_t scales, uintptr_t rows, int64_t count, uintptr_t out, int num_threads) {
    const QuantizedShape s = shape_of(n, k, group_size);
    const CodeFormat f = code_format(format);
    py::gil_scoped_release release;
    dequantize_code_panels(s, f, ptr<const uint8_t>(panels), ptr<const float>(scales), ptr<const int64_t>(rows),
                           count, ptr<float>(out), num_threads);
  }, py::arg("format"), py::arg("panels"), py::arg("n"), py::arg("k"), py::arg("group_size"), py::arg("scales"),
     py::arg("rows"), py::arg("count"), py::arg("out"), py::arg("num_threads"),
     "out [count, k] fp32 = the listed rows of the FP8 layer, dequantized (scales packed [groups, np]).");
  m.def("amx_min_rows", &amx_min_rows, "Rows from which the quantized kernels use AMX (where the CPU has it).");
  m.def("set_amx_min_rows", &set_amx_min_rows, py::arg("rows"), "Move the AMX crossover (tests, benchmarks).");
}

}  // namespace apt_fast
