#include <pybind11/pybind11.h>

#include "bindings.h"
#include "gguf/gguf_quant.h"

namespace py = pybind11;

namespace apt_fast {

APT_FAST_BINDINGS(gguf) {
  m.def(
      "gguf_quantize",
      [](uintptr_t src, int64_t n, int type, uintptr_t dst, int num_threads) {
        const auto qtype = static_cast<GgufQuantType>(type);
        gguf_type_size(qtype);  // rejects unknown type ids before any work
        py::gil_scoped_release release;
        gguf_quantize(reinterpret_cast<const float*>(src), n, qtype, reinterpret_cast<uint8_t*>(dst), num_threads);
      },
      py::arg("src"), py::arg("n"), py::arg("type"), py::arg("dst"), py::arg("num_threads"),
      "Quantize n fp32 values (n a multiple of 32) at address src into ggml blocks at dst.\n"
      "type is a ggml type id: 2 Q4_0, 3 Q4_1, 6 Q5_0, 7 Q5_1, 8 Q8_0. Byte-identical to gguf.quants.quantize.");
  m.def(
      "gguf_convert_float",
      [](uintptr_t src, int64_t n, int type, uintptr_t dst, int num_threads) {
        py::gil_scoped_release release;
        gguf_convert_float(reinterpret_cast<const float*>(src), n, static_cast<GgufFloatType>(type),
                           reinterpret_cast<uint16_t*>(dst), num_threads);
      },
      py::arg("src"), py::arg("n"), py::arg("type"), py::arg("dst"), py::arg("num_threads"),
      "Convert n fp32 values at address src to 16-bit floats at dst, rounding to nearest even.\n"
      "type is a ggml type id: 1 F16, 30 BF16. Byte-identical to gguf.quants.quantize.");
  m.def("gguf_type_size", [](int type) { return gguf_type_size(static_cast<GgufQuantType>(type)); }, py::arg("type"),
        "Bytes per 32-element block of the ggml type id.");
  m.def("fp32_to_fp16_bits", &fp32_to_fp16_bits, py::arg("x"),
        "IEEE binary16 bits of x (round to nearest even), as the quantizers store their scales.");
}

}  // namespace apt_fast
