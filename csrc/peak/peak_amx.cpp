// The AMX kinds' loop: four independent C tiles, each TDP* a 16 x 16 x 64 (int8) or x 32 (bf16) product.
#include "common/amx_tiles.h"
#include "peak/peak.h"

namespace apt_fast {
namespace simd_amx {

double peak_tile_loop(PeakKind kind, int64_t iterations) {
  TileConfig config;
  for (int t = 0; t < 8; ++t) config.set(t, kTileRows, kTileBytesPerRow);
  config.load();
  TileRelease release;
  _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);  // tile numbers are immediates
  _tile_zero(4); _tile_zero(5); _tile_zero(6); _tile_zero(7);
  if (kind == PeakKind::AmxInt8) {
    for (int64_t i = 0; i < iterations; ++i) {
      _tile_dpbssd(0, 4, 6);
      _tile_dpbssd(1, 4, 7);
      _tile_dpbssd(2, 5, 6);
      _tile_dpbssd(3, 5, 7);
    }
    return iterations * 4.0 * 16 * 16 * 64 * 2;
  }
  for (int64_t i = 0; i < iterations; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  return iterations * 4.0 * 16 * 16 * 32 * 2;
}

}  // namespace simd_amx
}  // namespace apt_fast
