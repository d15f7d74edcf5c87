// One bind_<family>(module) per op family; module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace apt_fast {
void bind_distill_loss(pybind11::module_& m);
void bind_flash_attention(pybind11::module_& m);
void bind_apt_attention(pybind11::module_& m);
void bind_gguf_quant(pybind11::module_& m);
}  // namespace apt_fast
