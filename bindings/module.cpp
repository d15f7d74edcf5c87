// The apt_fast._C module: build information, SIMD level control and every op family's kernels.
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "cpu_features.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "apt_fast native CPU kernels (torch-free; tensors are passed as data pointers, sizes and strides)";
  m.def("compiler", [] { return std::string(APT_FAST_COMPILER); }, "Compiler that built this module.");
  m.def("detected_simd_level", [] { return apt_fast::simd_level_name(apt_fast::detected_simd_level()); },
        "Best SIMD level this CPU supports: 'avx512', 'avx2' or 'scalar'.");
  m.def("simd_level", [] { return apt_fast::simd_level_name(apt_fast::active_simd_level()); },
        "SIMD level the kernels run at (lowered by APT_FAST_SIMD or set_simd_level).");
  m.def("set_simd_level", [](const std::string& name) { apt_fast::set_simd_level(apt_fast::parse_simd_level(name)); },
        py::arg("level"), "Run the kernels at 'scalar', 'avx2' or 'avx512' (at most the detected level).");
  apt_fast::bind_distill_loss(m);
  apt_fast::bind_flash_attention(m);
  apt_fast::bind_apt_attention(m);
  apt_fast::bind_gguf_quant(m);
}
