// Each bind_<family>.cpp registers its functions with the _C module by itself:
//
//   APT_FAST_BINDINGS(distill_loss) {
//     m.def("distill_loss_fwd", ...);
//   }
//
// module.cpp runs every registered block, so a new family adds its file and edits nothing shared.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

namespace apt_fast {

using BindFunction = void (*)(pybind11::module_&);

// (family, function) pairs, filled while the extension loads.
std::vector<std::pair<std::string, BindFunction>>& binding_registry();

struct BindingRegistrar {
  BindingRegistrar(const char* family, BindFunction bind) { binding_registry().emplace_back(family, bind); }
};

}  // namespace apt_fast

#define APT_FAST_BINDINGS(family)                                                            \
  static void apt_fast_bind_##family(pybind11::module_& m);                                 \
  static const ::apt_fast::BindingRegistrar apt_fast_registrar_##family(#family, apt_fast_bind_##family); \
  static void apt_fast_bind_##family(pybind11::module_& m)
