#include <pybind11/pybind11.h>

#include "bindings.h"
#include "peak/peak.h"

namespace py = pybind11;

namespace apt_fast {

APT_FAST_BINDINGS(peak) {
  m.def(
      "peak_ops_per_second",
      [](const std::string& kind, int num_threads) {
        const PeakKind k = parse_peak_kind(kind);
        py::gil_scoped_release release;
        return peak_ops_per_second(k, num_threads);
      },
      py::arg("kind"), py::arg("num_threads"),
      "Measured peak rate (operations per second; a multiply-add is 2) of fp32_fma, bf16_dot, int8_dot (AVX-512)\n"
      "or amx_bf16, amx_int8 (AMX) on num_threads threads: register-only loops, no memory traffic.");
  m.def(
      "read_bytes_per_second",
      [](int64_t bytes, int num_threads) {
        py::gil_scoped_release release;
        return read_bytes_per_second(bytes, num_threads);
      },
      py::arg("bytes"), py::arg("num_threads"),
      "Measured read bandwidth (bytes per second, best of 3) of num_threads threads over a buffer of `bytes`.");
}

}  // namespace apt_fast
