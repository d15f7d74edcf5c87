#include <pybind11/pybind11.h>

#include "bindings.h"
#include "common/amx_probe.h"
#include "common/checks.h"
#include "common/cpu_features.h"

namespace py = pybind11;

namespace apt_fast {

APT_FAST_BINDINGS(cpu) {
  m.def(
      "amx_int8_tile_product",
      [](uintptr_t a, uintptr_t b_vnni, uintptr_t c) {
        APT_CHECK(active_simd_level() == SimdLevel::Amx,
                  "amx_int8_tile_product needs the 'amx' tier, but the kernels run at '"
                      << simd_level_name(active_simd_level()) << "'");
        APT_CHECK(a && b_vnni && c, "a, b_vnni and c must be non-null");
        amx_int8_tile_product(reinterpret_cast<const int8_t*>(a), reinterpret_cast<const int8_t*>(b_vnni),
                              reinterpret_cast<int32_t*>(c));
      },
      py::arg("a"), py::arg("b_vnni"), py::arg("c"),
      "One AMX-INT8 tile product: c [16, 16] int32 = a [16, 64] int8 . b, b given VNNI-4 packed as [16, 64]\n"
      "(b_vnni[k // 4, 4 n + k % 4] = b[k, n]). Proves the tile state is usable in this process.");
}

}  // namespace apt_fast
