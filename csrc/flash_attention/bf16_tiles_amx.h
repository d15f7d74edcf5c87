// The AMX half of bf16_tiles.h: bf16 products on AMX tiles (TDPBF16PS), defined in bf16_tiles_amx.cpp (compiled
// with the AMX flags). Only call where active_simd_level() == SimdLevel::Amx.
#pragma once

#include <cstdint>

namespace apt_fast {
namespace simd_amx {

// Configure / release this thread's tiles for bf16_tile_gemm (every tile 16 rows of 64 bytes).
void bf16_tiles_begin();
void bf16_tiles_end();

// C[m16, n] (+)= A[m16, kp] . B[kp, n] with m16 = m rounded up to 16, n and kp multiples of 16 and 32: A bf16
// row-major (lda), B VNNI-2 (pair row p at b + p * 2 * ldb), C fp32 (ldc); see bf16_tiles.h.
void bf16_tile_gemm(int m, int n, int kp, const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb, float* c,
                    int64_t ldc, bool accumulate);

}  // namespace simd_amx
}  // namespace apt_fast
