// Runtime detection of the instruction-set level the kernels are dispatched to.
#pragma once

#include <string>

namespace apt_fast {

enum class SimdLevel : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// The best level this CPU supports (AVX-512 needs F, BW, VL, DQ and BF16; AVX2 needs FMA and F16C).
SimdLevel detected_simd_level();

// The level kernels run at: the detected one, lowered by APT_FAST_SIMD=scalar|avx2 or set_simd_level.
SimdLevel active_simd_level();

// Force a level (for tests and benchmarks); throws std::invalid_argument above the detected level.
void set_simd_level(SimdLevel level);

std::string simd_level_name(SimdLevel level);
SimdLevel parse_simd_level(const std::string& name);

}  // namespace apt_fast
