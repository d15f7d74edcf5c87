// N:M sparse linear forward on AMX tiles (compiled once, with AVX-512 and AMX), for the half-dense patterns
// (2:4, 4:8) with bf16 or int8 values. The weight is the A operand: each 32-channel block's kept values are expanded
// once into dense tile rows (VPEXPANDW / VPEXPANDB with the rows' kept-column masks, so only the kept half is read
// from memory) in a per-thread buffer, then multiplied with every 32-row block of x held as VNNI B tiles
// (bf16 pairs / int8 quads of inputs per activation row), 2 x 2 tiles (C in tmm0-3, A in tmm4-5, B in tmm6-7).
// C holds [channels][activation rows]: y is written transposed.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/amx_tiles.h"
#include "common/parallel_for.h"
#include "common/simd/vec.h"
#include "nm_linear/nm_linear.h"
#include "nm_linear/nm_positions.h"
#include "quantized_linear/quantized_rows.h"

namespace apt_fast {
namespace simd_amx {
namespace {

constexpr int64_t kBlock = 32;  // channels and activation rows per 2 x 2 tile block

void configure_tiles() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) config.set(t, kTileRows, 64);
  config.load();
}

// x rows [Mp][kp] (bytes per row: kp * element) as VNNI B tiles: tile (16-row block b, k-step s) is 16 rows of
// 64 bytes, row r = the step's inputs packed `group` bytes per activation row: [r][i][group bytes].
void to_b_tiles(const uint8_t* rows, int64_t mp, int64_t row_bytes, uint8_t* tiles, int num_threads) {
  const int64_t steps = row_bytes / 64;
  parallel_for(mp / kTileRows, num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      for (int64_t s = 0; s < steps; ++s) {
        uint32_t* tile = reinterpret_cast<uint32_t*>(tiles + (b * steps + s) * 1024);
        for (int64_t i = 0; i < kTileRows; ++i) {
          const uint32_t* src = reinterpret_cast<const uint32_t*>(rows + (b * kTileRows + i) * row_bytes + s * 64);
          for (int64_t r = 0; r < kTileRows; ++r) tile[r * kTileRows + i] = src[r];
        }
      }
  });
}

// Expands rows [n0, n0 + 32) of the weight into A tiles: buffer[s][t][16][64 bytes] for step s and tile t (rows
// n0 + 16 t ...), zero for rows past n.
void expand_a_tiles(const NmWeight& w, const NmMaskTable& masks, int64_t n0, int64_t steps, uint8_t* buffer) {
  const NmShape& s = w.shape;
  const bool int8 = w.dtype == NmValues::Int8;
  const int64_t step_columns = int8 ? 64 : 32, element = int8 ? 1 : 2;
  const int64_t kept = s.kept();
  for (int64_t r = 0; r < kBlock; ++r) {
    const int64_t n = n0 + r;
    uint8_t* out = buffer + (r / kTileRows) * 1024 + (r % kTileRows) * 64;
    if (n >= s.n) {
      for (int64_t step = 0; step < steps; ++step) std::memset(out + step * 2048, 0, 64);
      continue;
    }
    const uint8_t* meta = w.indices + n * s.index_bytes();
    const uint8_t* values = static_cast<const uint8_t*>(w.values) + n * kept * element;
    for (int64_t step = 0; step < steps; ++step) {
      const uint64_t mask = masks.columns(meta, step * step_columns / 8, static_cast<int>(step_columns / 8));
      const uint8_t* from = values + step * (step_columns / 2) * element;  // half the step's columns are kept
      const __m512i row = int8 ? _mm512_maskz_expandloadu_epi8(_cvtu64_mask64(mask), from)
                               : _mm512_maskz_expandloadu_epi16(_cvtu32_mask32(static_cast<uint32_t>(mask)), from);
      _mm512_storeu_si512(out + step * 2048, row);
    }
  }
}

}  // namespace

void nm_linear_kernel(const NmLinearArgs& a) {
  const NmShape& s = a.w.shape;
  const bool int8 = a.w.dtype == NmValues::Int8;
  const int64_t kp = round_up(s.k, int8 ? 64 : 32), mp = round_up(a.m, kBlock);
  const int64_t row_bytes = kp * (int8 ? 1 : 2), steps = row_bytes / 64;
  std::vector<uint8_t> rows(static_cast<size_t>(mp * row_bytes), 0);  // activation rows past m stay zero
  std::vector<float> a_scale(static_cast<size_t>(mp), 0.0f);
  parallel_for(a.m, a.num_threads, [&](int64_t begin, int64_t end) {
    if (int8)
      quantize_rows(a.x, a.x_stride, a.x_dtype, 8, begin, end, s.k, kp, s.k, 0, rows.data(), a_scale.data());
    else
      bf16_rows(a.x, a.x_stride, a.x_dtype, begin, end, s.k, kp, reinterpret_cast<uint16_t*>(rows.data()));
  });
  std::vector<uint8_t> b_tiles(rows.size());
  to_b_tiles(rows.data(), mp, row_bytes, b_tiles.data(), a.num_threads);
  const NmMaskTable masks(s);
  const size_t element = a.x_dtype == Dtype::Float32 ? 4 : 2;
  const int64_t blocks = (s.n + kBlock - 1) / kBlock;
  parallel_for(blocks, a.num_threads, [&](int64_t begin, int64_t end) {
    configure_tiles();
    TileRelease release;
    std::vector<uint8_t> a_tiles(static_cast<size_t>(steps * 2048));
    alignas(64) float block[kBlock * kBlock];  // [channel][activation row]
    alignas(64) int32_t sums[kBlock * kBlock];
    alignas(64) float out[kBlock];
    for (int64_t nb = begin; nb < end; ++nb) {
      const int64_t n0 = nb * kBlock, count = std::min(kBlock, s.n - n0);
      expand_a_tiles(a.w, masks, n0, steps, a_tiles.data());
      for (int64_t mb = 0; mb < mp / kBlock; ++mb) {
        const uint8_t* b0 = b_tiles.data() + (2 * mb) * steps * 1024;
        const uint8_t* b1 = b0 + steps * 1024;
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (int64_t step = 0; step < steps; ++step) {
          const uint8_t* a0 = a_tiles.data() + step * 2048;
          _tile_loadd(4, a0, 64);
          _tile_loadd(6, b0 + step * 1024, 64);
          if (int8) _tile_dpbssd(0, 4, 6); else _tile_dpbf16ps(0, 4, 6);
          _tile_loadd(7, b1 + step * 1024, 64);
          if (int8) _tile_dpbssd(1, 4, 7); else _tile_dpbf16ps(1, 4, 7);
          _tile_loadd(5, a0 + 1024, 64);
          if (int8) _tile_dpbssd(2, 5, 6); else _tile_dpbf16ps(2, 5, 6);
          if (int8) _tile_dpbssd(3, 5, 7); else _tile_dpbf16ps(3, 5, 7);
        }
        // C tile (t, u): channels 16 t.., activation rows 16 u..
        void* c = int8 ? static_cast<void*>(sums) : static_cast<void*>(block);
        _tile_stored(0, c, kBlock * 4);
        _tile_stored(1, static_cast<char*>(c) + 64, kBlock * 4);
        _tile_stored(2, static_cast<char*>(c) + 16 * kBlock * 4, kBlock * 4);
        _tile_stored(3, static_cast<char*>(c) + 16 * kBlock * 4 + 64, kBlock * 4);
        const int64_t m0 = mb * kBlock, rows_here = std::min(kBlock, a.m - m0);
        for (int64_t i = 0; i < rows_here; ++i) {
          for (int64_t ch = 0; ch < count; ++ch)
            out[ch] = int8 ? (static_cast<float>(sums[ch * kBlock + i]) * a.w.scales[n0 + ch]) * a_scale[m0 + i]
                           : block[ch * kBlock + i];
          add_bias_row(out, count, a.bias, n0);
          store_row(out, count, static_cast<char*>(a.y) + ((m0 + i) * a.y_stride + n0) * element, a.x_dtype);
        }
      }
    }
  });
}

}  // namespace simd_amx
}  // namespace apt_fast
