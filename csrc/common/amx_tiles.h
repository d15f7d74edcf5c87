// AMX tile configuration, for translation units compiled with the AMX flags (*_amx.cpp).
//
// A tile is up to 16 rows of up to 64 bytes. TDPBSSD multiplies an int8 tile A [M, 4K] by an int8 tile B
// stored VNNI-4 ([K, 4N]: the four k-consecutive bytes of each column side by side) into int32 C [M, N];
// TDPBF16PS does the same for bf16 with VNNI-2 ([K, 2N]) into fp32.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace apt_fast {

constexpr int kTileRows = 16;
constexpr int kTileBytesPerRow = 64;

// The 64-byte operand of LDTILECFG (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};

  void set(int tile, int tile_rows, int tile_bytes_per_row) {
    rows[tile] = static_cast<uint8_t>(tile_rows);
    bytes_per_row[tile] = static_cast<uint16_t>(tile_bytes_per_row);
  }
  void load() const {
    // GCC does not see LDTILECFG read this object and may drop the stores that filled it: fence them.
    asm volatile("" : : "r"(this) : "memory");
    _tile_loadconfig(this);
  }
};

// Releases the tile state when it goes out of scope (so a thread leaves no tiles configured).
struct TileRelease {
  ~TileRelease() { _tile_release(); }
};

}  // namespace apt_fast
