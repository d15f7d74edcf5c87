// Block-sparse linear forward on AMX tiles (compiled once, with AVX-512 and AMX), for bf16 values in (16, 16) and
// (32, 32) blocks: a kept block's rows, as stored ([bn][bk] bf16, row-major), are A tiles (16 rows of bk inputs);
// x is held as VNNI-2 B tiles (pairs of inputs per activation row, 32 inputs per tile, a 16-input block takes half
// of one). Per block row and 32 activation rows, the C tiles accumulate over the row's kept blocks: 2 x 2 tiles for
// 32-row blocks, 1 x 2 for 16-row ones (C in tmm0-3, A in tmm4-5, B in tmm6-7). C is [weight rows][activation
// rows]: transposed in registers (16 x 16 at a time) into y's rows.
#include <algorithm>
#include <vector>

#include "block_linear/block_linear.h"
#include "common/amx_tiles.h"
#include "common/parallel_for.h"
#include "common/simd/vec.h"
#include "quantized_linear/quantized_rows.h"

namespace apt_fast {
namespace simd_amx {
namespace {

constexpr int64_t kRowsPerPass = 32;  // activation rows per pass (two B tiles)

void configure_tiles(int bk) {
  TileConfig config;
  for (int t = 0; t < 4; ++t) config.set(t, kTileRows, 64);
  config.set(4, kTileRows, bk * 2);
  config.set(5, kTileRows, bk * 2);
  config.set(6, bk / 2, 64);
  config.set(7, bk / 2, 64);
  config.load();
}

// bf16 rows [mp][kp] as B tiles: tile (16-row block t, 32-input step s) at (t * steps + s) * 1024 bytes, row r =
// inputs (2 r, 2 r + 1) of the step for the block's 16 rows: [r][i][2].
void to_b_tiles(const uint16_t* rows, int64_t mp, int64_t kp, uint16_t* tiles, int num_threads) {
  const int64_t steps = kp / 32;
  parallel_for(mp / kTileRows, num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t)
      for (int64_t s = 0; s < steps; ++s) {
        uint32_t* tile = reinterpret_cast<uint32_t*>(tiles + (t * steps + s) * 512);
        for (int64_t i = 0; i < kTileRows; ++i) {
          const uint32_t* src = reinterpret_cast<const uint32_t*>(rows + (t * kTileRows + i) * kp + s * 32);
          for (int64_t r = 0; r < kTileRows; ++r) tile[r * kTileRows + i] = src[r];
        }
      }
  });
}

// r[j] = column j of the 16 x 16 fp32 block whose rows were r[0..15] (unpacks within 128-bit lanes, then lanes).
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int k = 0; k < 4; ++k) {
    t[k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88);
    t[4 + k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xDD);
    t[8 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88);
    t[12 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xDD);
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88);
    r[4 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0x88);
    r[8 + k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xDD);
    r[12 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0xDD);
  }
}

// c [bn][kRowsPerPass] (the C tiles: weight rows by activation rows) -> ct [kRowsPerPass][bn], y's row order.
void transpose_c(const float* c, int bn, float* ct) {
  __m512 r[16];
  for (int r0 = 0; r0 < bn; r0 += 16)
    for (int i0 = 0; i0 < kRowsPerPass; i0 += 16) {
      for (int k = 0; k < 16; ++k) r[k] = _mm512_load_ps(c + (r0 + k) * kRowsPerPass + i0);
      transpose16(r);
      for (int j = 0; j < 16; ++j) _mm512_storeu_ps(ct + (i0 + j) * bn + r0, r[j]);
    }
}

}  // namespace

void block_linear_kernel(const BlockLinearArgs& a) {
  const BlockWeight& w = a.w;
  const BlockShape& s = w.shape;
  const int64_t kp = round_up(s.k, 32), mp = round_up(a.m, kRowsPerPass), steps = kp / 32;
  std::vector<uint16_t> rows(static_cast<size_t>(mp * kp), 0);  // rows past m stay zero
  parallel_for(a.m, a.num_threads, [&](int64_t begin, int64_t end) {
    bf16_rows(a.x, a.x_stride, a.x_dtype, begin, end, s.k, kp, rows.data());
  });
  std::vector<uint16_t> tiles(rows.size());
  to_b_tiles(rows.data(), mp, kp, tiles.data(), a.num_threads);
  const size_t element = a.x_dtype == Dtype::Float32 ? 4 : 2;
  const bool two_row_tiles = s.bn == 32;
  const int64_t block_bytes = static_cast<int64_t>(s.bn) * s.bk * 2;
  parallel_for(s.block_rows(), a.num_threads, [&](int64_t begin, int64_t end) {
    configure_tiles(s.bk);
    TileRelease release;
    alignas(64) float c[32 * kRowsPerPass];   // [weight row][activation row]
    alignas(64) float ct[kRowsPerPass * 32];  // [activation row][weight row]
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n0 = row * s.bn;
      for (int64_t m0 = 0; m0 < mp; m0 += kRowsPerPass) {
        const uint16_t* b_rows = tiles.data() + (m0 / kTileRows) * steps * 512;  // two 16-row slabs
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (int64_t b = w.row_offsets[row]; b < w.row_offsets[row + 1]; ++b) {
          const int64_t c0 = static_cast<int64_t>(w.columns[b]) * s.bk;
          // the block's inputs: rows (c0 % 32) / 2 .. of step c0 / 32
          const uint16_t* b0 = b_rows + (c0 / 32) * 512 + (c0 % 32) * 16;
          const uint16_t* b1 = b0 + steps * 512;
          const char* a0 = static_cast<const char*>(w.values) + b * block_bytes;
          _tile_loadd(4, a0, s.bk * 2);
          _tile_loadd(6, b0, 64);
          _tile_dpbf16ps(0, 4, 6);
          _tile_loadd(7, b1, 64);
          _tile_dpbf16ps(1, 4, 7);
          if (two_row_tiles) {
            _tile_loadd(5, a0 + 16 * s.bk * 2, s.bk * 2);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
        }
        _tile_stored(0, c, kRowsPerPass * 4);
        _tile_stored(1, c + 16, kRowsPerPass * 4);
        if (two_row_tiles) {
          _tile_stored(2, c + 16 * kRowsPerPass, kRowsPerPass * 4);
          _tile_stored(3, c + 16 * kRowsPerPass + 16, kRowsPerPass * 4);
        }
        transpose_c(c, s.bn, ct);
        for (int64_t i = 0; i < std::min(kRowsPerPass, a.m - m0); ++i) {
          float* out = ct + i * s.bn;
          add_bias_row(out, s.bn, a.bias, n0);
          store_row(out, s.bn, static_cast<char*>(a.y) + ((m0 + i) * a.y_stride + n0) * element, a.x_dtype);
        }
      }
    }
  });
}

}  // namespace simd_amx
}  // namespace apt_fast
