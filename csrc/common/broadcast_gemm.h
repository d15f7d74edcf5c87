// A register-blocked fp32 micro-kernel written once against Vec (common/simd/vec.h), for the sparse
// kernels' dense pieces (a kept block, a dense-expanded window of columns):
//
//   C[i][:] (+)= sum over segments s, p < depth of  A_s[p * a_step + i * a_lane] * B_s[p * ldb + :]
//
// for rows i < rows and NV vectors of columns: each A element is broadcast, each B row loaded once per p and used
// by every row, the rows x NV accumulators stay in registers across all segments (e.g. the kept blocks of a block
// row). A is fp32 or bf16 (uint16_t bits, exact in fp32), B and C fp32.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/simd/vec.h"

namespace apt_fast {
namespace APT_SIMD_NS {

template <class T>
struct GemmSegment {
  const T* a;      // A_s
  const float* b;  // B_s
};

inline float broadcast_value(const float* p) { return *p; }
inline float broadcast_value(const uint16_t* p) {
  const uint32_t bits = static_cast<uint32_t>(*p) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Rows per call that keep MR x NV accumulators, NV B vectors and a broadcast within the vector registers.
template <int NV>
constexpr int gemm_max_rows() {
  return std::min(24, ((Vec::size == 16 ? 32 : 16) - NV - 1) / NV);
}

template <class T, int MR, int NV>
void broadcast_gemm_block(const GemmSegment<T>* segments, int64_t count, int64_t depth, int64_t a_step, int64_t a_lane,
                          int64_t a_offset, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  Vec acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = accumulate ? Vec::load(c + i * ldc + v * Vec::size) : Vec(0.0f);
  for (int64_t s = 0; s < count; ++s) {
    const T* a = segments[s].a + a_offset;
    const float* b = segments[s].b;
    for (int64_t p = 0; p < depth; ++p) {
      Vec bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = Vec::load(b + p * ldb + v * Vec::size);
      for (int i = 0; i < MR; ++i) {
        const Vec ai = Vec::broadcast(broadcast_value(a + p * a_step + i * a_lane));
        for (int v = 0; v < NV; ++v) acc[i][v] = Vec::fmadd(ai, bv[v], acc[i][v]);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v].store(c + i * ldc + v * Vec::size);
}

template <class T, int NV, int MR>
void broadcast_gemm_tail(int rows, const GemmSegment<T>* segments, int64_t count, int64_t depth, int64_t a_step,
                         int64_t a_lane, int64_t a_offset, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  if constexpr (MR > 0) {
    if (rows == MR)
      return broadcast_gemm_block<T, MR, NV>(segments, count, depth, a_step, a_lane, a_offset, ldb, c, ldc,
                                             accumulate);
    broadcast_gemm_tail<T, NV, MR - 1>(rows, segments, count, depth, a_step, a_lane, a_offset, ldb, c, ldc,
                                       accumulate);
  }
}

// C rows [0, rows) in chunks of gemm_max_rows<NV>() rows.
template <class T, int NV>
void broadcast_gemm(int64_t rows, const GemmSegment<T>* segments, int64_t count, int64_t depth, int64_t a_step,
                    int64_t a_lane, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  constexpr int kRows = gemm_max_rows<NV>();
  for (int64_t i0 = 0; i0 < rows; i0 += kRows) {
    const int chunk = static_cast<int>(std::min<int64_t>(kRows, rows - i0));
    if (chunk == kRows)
      broadcast_gemm_block<T, kRows, NV>(segments, count, depth, a_step, a_lane, i0 * a_lane, ldb, c + i0 * ldc,
                                         ldc, accumulate);
    else
      broadcast_gemm_tail<T, NV, kRows - 1>(chunk, segments, count, depth, a_step, a_lane, i0 * a_lane, ldb,
                                            c + i0 * ldc, ldc, accumulate);
  }
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
