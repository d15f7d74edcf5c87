// A single AMX-INT8 tile product, to prove that this process may use the tiles (Linux grants the tile
// state per process; without it a tile instruction is fatal) and that AMX agrees with integer arithmetic.
#pragma once

#include <cstdint>

namespace apt_fast {

// c [16, 16] int32 = a [16, 64] int8 . b, with b given VNNI-4 packed: b_vnni[k / 4][4 n + k % 4] = b[k][n]
// ([16, 64] int8). Row-major, contiguous. Only call when active_simd_level() == SimdLevel::Amx.
void amx_int8_tile_product(const int8_t* a, const int8_t* b_vnni, int32_t* c);

}  // namespace apt_fast
