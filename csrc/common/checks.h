// Shared definitions for the torch-free kernels: argument checks and element types.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace apt_fast {

// Element type of a tensor handed over from Python (matches the dtype codes of apt_fast/backends/cpu/).
enum class Dtype : int { Float32 = 0, BFloat16 = 1 };

// pybind11 turns std::invalid_argument into Python's ValueError.
#define APT_CHECK(cond, msg)                                  \
  do {                                                        \
    if (!(cond)) {                                            \
      std::ostringstream apt_check_stream_;                   \
      apt_check_stream_ << msg;                               \
      throw std::invalid_argument(apt_check_stream_.str());   \
    }                                                         \
  } while (0)

}  // namespace apt_fast
