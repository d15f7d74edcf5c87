// Picks the vector type for the level this translation unit is compiled for (APT_SIMD_LEVEL: 0 scalar,
// 1 AVX2, 2 AVX-512, 3 AVX-512 in an AMX translation unit) and names the namespace its kernels live in.
// Kernels are written once against the Vec interface below and compiled once per level.
//
// Vec interface: Vec::size lanes of float;
//   load(const float*), load(const uint16_t* bf16), load_partial(p, n, fill), broadcast(x);
//   store(float*), store(uint16_t* bf16, round to nearest even), store_partial(p, n);
//   stream(float*) (non-temporal, p aligned to the vector size; fence() before another thread reads);
//   + - * /, fmadd(a, b, c) = a*b+c, max, min, select(mask, a, b), a < b, a == b, a > b;
//   reduce_add(), reduce_max(); any(mask); gather(base, index) = base[trunc(index lane)] (index >= 0);
//   iota() = lanes 0, 1, ...; pow2n(n) = 2^n for integral n; frexp(x, &exponent) -> mantissa in [0.5, 1);
//   expand(packed, bits): lane i set by bit i of `bits` takes the next packed value (fp32, or bf16 widened),
//     the others 0, reading exactly popcount(bits) values; compress(v, bits): the lanes set in `bits`, in
//     order, moved to the low lanes (the rest unspecified) -- store them with store_partial(p, popcount).
#pragma once

// Every level gets its own namespace, so the builds of one kernel never share a symbol. Level 3 is the
// AMX tier's translation units (*_amx.cpp): AVX-512 vectors beside the tiles.
#if APT_SIMD_LEVEL == 3
#define APT_SIMD_NS simd_amx
#include "common/simd/vec_avx512.h"
#elif APT_SIMD_LEVEL == 2
#define APT_SIMD_NS simd_avx512
#include "common/simd/vec_avx512.h"
#elif APT_SIMD_LEVEL == 1
#define APT_SIMD_NS simd_avx2
#include "common/simd/vec_avx2.h"
#else
#define APT_SIMD_NS simd_scalar
#include "common/simd/vec_scalar.h"
#endif

#include "common/simd/vec_math.h"
