// Declaring a kernel once per SIMD tier, and routing a call to the tier in use.
//
// A family's *_kernels.cpp is compiled once per vector tier (scalar, AVX2, AVX-512; CMakeLists.txt),
// each build in its own namespace (common/simd/vec.h). Its header declares the kernel for every tier:
//   APT_FAST_DECLARE_TIERS(void distill_loss_fwd(const DistillLossArgs& args));
// and its *_dispatch.cpp validates the arguments, then routes:
//   APT_FAST_ROUTE(distill_loss_fwd, args);
// The AMX tier runs the AVX-512 build: matrix-tile code lives in a family's *_amx.cpp and is called by
// that family's dispatch where it pays (active_simd_level() == SimdLevel::Amx).
#pragma once

#include "common/cpu_features.h"

#define APT_FAST_DECLARE_TIERS(declaration) \
  namespace simd_scalar { declaration; }    \
  namespace simd_avx2 { declaration; }      \
  namespace simd_avx512 { declaration; }

#define APT_FAST_ROUTE(fn, ...)                                                          \
  do {                                                                                   \
    switch (::apt_fast::active_simd_level()) {                                           \
      case ::apt_fast::SimdLevel::Amx:                                                   \
      case ::apt_fast::SimdLevel::Avx512: return ::apt_fast::simd_avx512::fn(__VA_ARGS__); \
      case ::apt_fast::SimdLevel::Avx2: return ::apt_fast::simd_avx2::fn(__VA_ARGS__);   \
      default: return ::apt_fast::simd_scalar::fn(__VA_ARGS__);                          \
    }                                                                                    \
  } while (0)
