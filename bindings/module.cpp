// The apt_fast._C module: build information, CPU features and tier control, then every family's
// functions (each bind_<family>.cpp registers its own, see bindings.h).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>

#include "bindings.h"
#include "common/cpu_features.h"

namespace py = pybind11;

namespace apt_fast {

std::vector<std::pair<std::string, BindFunction>>& binding_registry() {
  static std::vector<std::pair<std::string, BindFunction>> registry;
  return registry;
}

}  // namespace apt_fast

PYBIND11_MODULE(_C, m) {
  using namespace apt_fast;
  m.doc() = "apt_fast native CPU kernels (torch-free; tensors are passed as data pointers, sizes and strides)";
  m.def("compiler", [] { return std::string(APT_FAST_COMPILER); }, "Compiler that built this module.");
  m.def(
      "cpu_features",
      [] {
        py::dict features;
        for (const auto& [name, present] : cpu_features().items()) features[py::str(name)] = present;
        return features;
      },
      "The CPU features detected at run time (CPUID leaves 1 and 7, XGETBV) and whether Linux granted the AMX\n"
      "tile state to this process: {name: bool}.");
  m.def("detected_simd_level", [] { return simd_level_name(detected_simd_level()); },
        "Best tier this CPU supports: 'amx', 'avx512', 'avx2' or 'scalar'.");
  m.def("simd_level", [] { return simd_level_name(active_simd_level()); },
        "Tier the kernels run at (lowered by APT_FAST_SIMD or set_simd_level).");
  m.def("set_simd_level", [](const std::string& name) { set_simd_level(parse_simd_level(name)); }, py::arg("level"),
        "Run the kernels at 'scalar', 'avx2', 'avx512' or 'amx' (at most the detected tier).");
  auto& families = binding_registry();
  std::sort(families.begin(), families.end());
  for (const auto& family : families) family.second(m);
}
