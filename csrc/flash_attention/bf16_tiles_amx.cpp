// bf16 products of the attention kernels on AMX tiles (see bf16_tiles_amx.h): C in 2 x 2 tiles (tmm0-3), A in
// tmm4-5, B in tmm6-7, 32 values of k per step.
#include "flash_attention/bf16_tiles_amx.h"

#include "common/amx_tiles.h"

namespace apt_fast {
namespace simd_amx {

void bf16_tiles_begin() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) config.set(t, kTileRows, kTileBytesPerRow);
  config.load();
}

void bf16_tiles_end() { _tile_release(); }

void bf16_tile_gemm(int m, int n, int kp, const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb, float* c,
                    int64_t ldc, bool accumulate) {
  const int64_t a_bytes = lda * 2, b_bytes = ldb * 4, c_bytes = ldc * 4;
  for (int i = 0; i < m; i += 32) {
    const bool two_m = i + 16 < m;
    const uint16_t* a0 = a + i * lda;
    const uint16_t* a1 = a0 + 16 * lda;
    for (int j = 0; j < n; j += 32) {
      const bool two_n = j + 16 < n;
      float* c0 = c + i * ldc + j;
      float* c1 = c0 + 16 * ldc;
      if (accumulate) {
        _tile_loadd(0, c0, c_bytes);
        if (two_n) _tile_loadd(1, c0 + 16, c_bytes);
        if (two_m) _tile_loadd(2, c1, c_bytes);
        if (two_m && two_n) _tile_loadd(3, c1 + 16, c_bytes);
      } else {
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
      }
      for (int p = 0; p < kp; p += 32) {
        const uint16_t* b0 = b + (p / 2) * 2 * ldb + 2 * j;
        _tile_loadd(4, a0 + p, a_bytes);
        _tile_loadd(6, b0, b_bytes);
        _tile_dpbf16ps(0, 4, 6);
        if (two_n) {
          _tile_loadd(7, b0 + 32, b_bytes);
          _tile_dpbf16ps(1, 4, 7);
        }
        if (two_m) {
          _tile_loadd(5, a1 + p, a_bytes);
          _tile_dpbf16ps(2, 5, 6);
          if (two_n) _tile_dpbf16ps(3, 5, 7);
        }
      }
      _tile_stored(0, c0, c_bytes);
      if (two_n) _tile_stored(1, c0 + 16, c_bytes);
      if (two_m) _tile_stored(2, c1, c_bytes);
      if (two_m && two_n) _tile_stored(3, c1 + 16, c_bytes);
    }
  }
}

}  // namespace simd_amx
}  // namespace apt_fast
