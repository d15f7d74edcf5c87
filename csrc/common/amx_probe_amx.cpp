#include "common/amx_probe.h"

#include "common/amx_tiles.h"

namespace apt_fast {

void amx_int8_tile_product(const int8_t* a, const int8_t* b_vnni, int32_t* c) {
  TileConfig config;
  config.set(0, kTileRows, 16 * sizeof(int32_t));  // C
  config.set(1, kTileRows, kTileBytesPerRow);      // A
  config.set(2, kTileRows, kTileBytesPerRow);      // B (VNNI-4)
  config.load();
  TileRelease release;
  _tile_zero(0);
  _tile_loadd(1, a, kTileBytesPerRow);
  _tile_loadd(2, b_vnni, kTileBytesPerRow);
  _tile_dpbssd(0, 1, 2);
  _tile_stored(0, c, 16 * sizeof(int32_t));
}

}  // namespace apt_fast
