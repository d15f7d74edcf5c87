// The quantized linear layers on AMX tiles (compiled once, with AVX-512 and AMX): blocks of 32 rows x 32
// channels, 2 x 2 tiles (C in tmm0-3, A in tmm4-5, B in tmm6-7).
//
// Int8 weights: int8 activation bytes (signed: TDPBSSD multiplies signed by signed, no +128) against the
// Int8Panels rows, which are B tiles as they are. FP8: each 32-channel block's codes are decoded once to bf16
// (code_decode.h) into
// a per-thread buffer, then reused by every row block against bf16 activations with TDPBF16PS; a per-group scale
// is folded into the decoded weights (rounded to bf16), a per-channel one applied to the fp32 sums.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/amx_tiles.h"
#include "common/parallel_for.h"
#include "common/simd/vec.h"
#include "quantized_linear/code_decode.h"
#include "quantized_linear/quantized_rows.h"

namespace apt_fast {
namespace simd_amx {
namespace {

constexpr int64_t kBlockM = 32;
constexpr int64_t kActivationChunkBytes = int64_t{1} << 20;  // activations of one row chunk: half of a 2 MiB L2
constexpr int64_t kBlockN = 32;

// C tiles 0-3 (16 x 16 fp32/int32), A tiles 4-5 (16 rows x k_bytes), B tiles 6-7 (k_bytes / 4 rows x 64 bytes).
void configure_tiles(int k_bytes) {
  TileConfig config;
  for (int c = 0; c < 4; ++c) config.set(c, kTileRows, 64);
  config.set(4, kTileRows, k_bytes);
  config.set(5, kTileRows, k_bytes);
  config.set(6, k_bytes / 4, 64);
  config.set(7, k_bytes / 4, 64);
  config.load();
}

// Stores the four C tiles as a [32][32] block (row stride 32 values).
template <class T>
void store_c(T* block) {
  _tile_stored(0, block, kBlockN * 4);
  _tile_stored(1, block + 16, kBlockN * 4);
  _tile_stored(2, block + 16 * kBlockN, kBlockN * 4);
  _tile_stored(3, block + 16 * kBlockN + 16, kBlockN * 4);
}

// Calls block(m_block, n_block) for every 32 x 32 block, channel blocks split over threads, each thread with
// its tiles configured for k_bytes per step; rows past the last block's real ones are computed and dropped.
// Row blocks go in chunks of chunk_blocks, all channel blocks over one chunk before the next, so that a chunk's
// activations stay in L2 while the weights stream past (else every channel block re-reads all rows from L3).
template <class Block>
void for_each_block(int64_t m_blocks, int64_t chunk_blocks, int64_t np, int num_threads, int k_bytes,
                    const Block& block) {
  const int64_t n_blocks = np / kBlockN;
  for (int64_t chunk = 0; chunk < m_blocks; chunk += chunk_blocks) {
    const int64_t chunk_end = std::min(m_blocks, chunk + chunk_blocks);
    parallel_for(n_blocks, num_threads, [&](int64_t begin, int64_t end) {
      configure_tiles(k_bytes);
      TileRelease release;
      for (int64_t nb = begin; nb < end; ++nb)
        for (int64_t mb = chunk; mb < chunk_end; ++mb) block(mb, nb);
    });
  }
}

// y rows of one block: count channels from n0 of rows m0 .. m0 + rows, from the fp32 [32][32] block.
void store_block(float* block, int64_t m0, int64_t rows, int64_t n0, int64_t count, void* y, int64_t y_stride,
                 Dtype dtype) {
  const size_t element = dtype == Dtype::Float32 ? 4 : 2;
  for (int64_t i = 0; i < rows; ++i)
    store_row(block + i * kBlockN, count, static_cast<char*>(y) + ((m0 + i) * y_stride + n0) * element, dtype);
}

// Rows [0, rows) of `src` (row stride src_stride bytes, row_bytes used; rows a multiple of 16) as tile-ordered
// blocks: dst[(r / 16)][c / piece][r % 16][c % piece], so that the A tile of 16 rows and one step of `piece`
// bytes is 1 KiB (or 512 B) of consecutive memory, not 16 rows a whole row apart (which all fall into one L1 set).
void to_tiles(const uint8_t* src, int64_t rows, int64_t src_stride, int64_t row_bytes, int64_t piece, uint8_t* dst,
              int num_threads) {
  parallel_for(rows / kTileRows, num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t)
      for (int64_t r = 0; r < kTileRows; ++r)
        for (int64_t c = 0; c < row_bytes; c += piece)
          std::memcpy(dst + t * kTileRows * row_bytes + c * kTileRows + r * piece,
                      src + (t * kTileRows + r) * src_stride + c, piece);
  });
}

// Asks for the `bytes` at p to be brought into L1 (one request per cache line): tile loads that hit L1 keep the
// tiles' multiply-adds busy, those that miss stall them (tiles are not renamed, so a load waits for the products
// still reading its register, and the products wait for the load).
inline void prefetch_tile(const void* p, int64_t bytes) {
  for (int64_t offset = 0; offset < bytes; offset += 64)
    _mm_prefetch(static_cast<const char*>(p) + offset, _MM_HINT_T0);
}

// One k-step of a 2 x 2 block: C0..C3 += A0.B0, A0.B1, A1.B0, A1.B1, loads interleaved with the products that
// free their registers, and the next step's operands prefetched.
#define APT_FAST_TILE_STEP(dp, a0, a1, b0, b1, a_stride, b_stride, next_a0, next_a1, next_b0, next_b1, bytes) \
  do {                                                                                                     \
    prefetch_tile(next_a0, bytes);                                                                         \
    prefetch_tile(next_a1, bytes);                                                                         \
    prefetch_tile(next_b0, 1024);                                                                          \
    prefetch_tile(next_b1, 1024);                                                                          \
    _tile_loadd(4, a0, a_stride);                                                                          \
    _tile_loadd(6, b0, b_stride);                                                                          \
    dp(0, 4, 6);                                                                                           \
    _tile_loadd(7, b1, b_stride);                                                                          \
    dp(1, 4, 7);                                                                                           \
    _tile_loadd(5, a1, a_stride);                                                                          \
    dp(2, 5, 6);                                                                                           \
    dp(3, 5, 7);                                                                                           \
  } while (0)

}  // namespace

void int8_linear_kernel(const Int8LinearArgs& a) {
  const QuantizedShape& s = a.shape;
  const int halves = a.activation_bits == 8 ? 1 : 2;
  // A block is 32 channels by 32 activation rows (8 bits: A tiles = rows 0-15 and 16-31) or by 16 rows (16 bits:
  // A tiles = the high and the low bytes of the same 16 rows).
  const int64_t block_rows = halves == 1 ? kBlockM : kBlockM / 2;
  const int64_t kp = s.kp(), np = s.np(), m = a.m, mp = round_up(m, block_rows), groups = s.groups();
  std::vector<uint8_t> qa(static_cast<size_t>(mp * halves * kp), 0);  // rows past m stay zero
  std::vector<float> a_scale(static_cast<size_t>(mp * groups), 0.0f);  // rows past m: zero
  parallel_for(m, a.num_threads, [&](int64_t begin, int64_t end) {
    quantize_rows(a.x, a.x_stride, a.x_dtype, a.activation_bits, begin, end, s.k, kp, s.group_size, 0, qa.data(),
                  a_scale.data());
  });
  const int64_t k_step = groups == 1 || s.group_size % 64 == 0 ? 64 : 32;
  const int64_t group_k = groups == 1 ? kp : s.group_size;
  // A tiles, tile-ordered: 8 bits, consecutive 16-row blocks of the rows; 16 bits, per 16 rows the high bytes'
  // block then the low bytes'.
  std::vector<uint8_t> tiles(qa.size());
  const int64_t tile_block = kTileRows * kp;
  if (halves == 1) {
    to_tiles(qa.data(), mp, kp, kp, k_step, tiles.data(), a.num_threads);
  } else {
    std::vector<uint8_t> staged(static_cast<size_t>(mp * kp));
    for (int half = 0; half < 2; ++half) {
      to_tiles(qa.data() + half * kp, mp, 2 * kp, kp, k_step, staged.data(), a.num_threads);
      for (int64_t t = 0; t < mp / kTileRows; ++t)
        std::memcpy(tiles.data() + (2 * t + half) * tile_block, staged.data() + t * tile_block, tile_block);
    }
  }
  const int64_t chunk_blocks = std::max<int64_t>(1, kActivationChunkBytes / (kBlockM * kp));  // int8 bytes
  for_each_block(mp / block_rows, chunk_blocks, np, a.num_threads, static_cast<int>(k_step),
                 [&](int64_t mb, int64_t nb) {
    alignas(64) int32_t sums[kBlockM * kBlockN];
    alignas(64) float total[kBlockM * kBlockN] = {};
    const int8_t* a0 = reinterpret_cast<const int8_t*>(tiles.data()) + 2 * mb * tile_block;
    const int8_t* a1 = a0 + tile_block;
    const int8_t* b0 = a.panels + (2 * nb) * kp * kQPanel;
    const int8_t* b1 = b0 + kp * kQPanel;
    for (int64_t g = 0; g < groups; ++g) {
      _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
      for (int64_t k = g * group_k; k < (g + 1) * group_k; k += k_step) {
        const int64_t next = std::min(k + k_step, kp - k_step);
        APT_FAST_TILE_STEP(_tile_dpbssd, a0 + k * kTileRows, a1 + k * kTileRows, b0 + k * kQPanel, b1 + k * kQPanel,
                           k_step, 64, a0 + next * kTileRows, a1 + next * kTileRows, b0 + next * kQPanel,
                           b1 + next * kQPanel, kTileRows * k_step);
      }
      store_c(sums);
      const float* scale = a.scales + g * np + nb * kBlockN;
      const int32_t* comp = a.compensation + g * np + nb * kBlockN;
      for (int64_t i = 0; i < block_rows; ++i) {
        const __m512 row = _mm512_set1_ps(a_scale[(mb * block_rows + i) * groups + g]);
        for (int half = 0; half < 2; ++half) {
          const __m512 sc = _mm512_loadu_ps(scale + 16 * half);
          __m512 sum = _mm512_cvtepi32_ps(_mm512_loadu_si512(sums + i * kBlockN + 16 * half));
          if (halves == 2) {  // S_h in rows 0-15; the low bytes were l - 128, so S_l = sum + 128 * sum(w)
            const __m512i low = _mm512_add_epi32(_mm512_loadu_si512(sums + (16 + i) * kBlockN + 16 * half),
                                                 _mm512_loadu_si512(comp + 16 * half));
            sum = _mm512_add_ps(_mm512_mul_ps(sum, _mm512_set1_ps(256.0f)), _mm512_cvtepi32_ps(low));
          }
          float* t = total + i * kBlockN + 16 * half;
          _mm512_storeu_ps(t, _mm512_add_ps(_mm512_loadu_ps(t), _mm512_mul_ps(_mm512_mul_ps(sum, sc), row)));
        }
      }
    }
    const int64_t m0 = mb * block_rows, n0 = nb * kBlockN;
    const int64_t rows = std::min(block_rows, m - m0), count = std::min(kBlockN, s.n - n0);
    for (int64_t i = 0; i < rows; ++i) add_bias_row(total + i * kBlockN, count, a.bias, n0);
    store_block(total, m0, rows, n0, count, a.y, a.y_stride, a.x_dtype);
  });
}

void code_linear_kernel(const CodeLinearArgs& a) {
  const QuantizedShape& s = a.shape;
  const int64_t kp = s.kp(), np = s.np(), m = a.m, mp = round_up(m, kBlockM), groups = s.groups();
  std::vector<uint16_t> xb(static_cast<size_t>(mp * kp), 0);
  parallel_for(m, a.num_threads, [&](int64_t begin, int64_t end) {
    bf16_rows(a.x, a.x_stride, a.x_dtype, begin, end, s.k, kp, xb.data());
  });
  std::vector<uint16_t> x_tiles(xb.size());
  to_tiles(reinterpret_cast<const uint8_t*>(xb.data()), mp, 2 * kp, 2 * kp, 64,
           reinterpret_cast<uint8_t*>(x_tiles.data()), a.num_threads);
  const CodeDecoder decoder(a.format);
  const int64_t m_blocks = mp / kBlockM, n_blocks = np / kBlockN;
  parallel_for(n_blocks, a.num_threads, [&](int64_t begin, int64_t end) {
    configure_tiles(64);  // 32 bf16 inputs per step
    TileRelease release;
    std::vector<uint16_t> weights(static_cast<size_t>(2 * kp * kQPanel));  // two decoded panels, VNNI-2
    alignas(64) float block[kBlockM * kBlockN];
    for (int64_t nb = begin; nb < end; ++nb) {
      // Decode the block's two panels once (with a per-group scale folded in when there are groups).
      for (int half = 0; half < 2; ++half) {
        const uint8_t* codes = a.panels + (2 * nb + half) * kp * kQPanel;
        uint16_t* out = weights.data() + half * kp * kQPanel;
        for (int64_t r = 0; r < kp / 4; ++r) {
          __m512i pair0, pair1;
          decoder.decode(_mm512_loadu_si512(codes + r * 64), &pair0, &pair1);
          if (groups > 1) {
            // lane pair (2c, 2c+1) of a bf16 row belongs to channel c: widen to fp32 halves and scale.
            const __m512 scale = _mm512_loadu_ps(a.scales + (r * 4 / s.group_size) * np + (2 * nb + half) * kQPanel);
            const __m512i lanes_lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            const __m512i lanes_hi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
            const __m512 scale_lo = _mm512_permutexvar_ps(lanes_lo, scale), scale_hi = _mm512_permutexvar_ps(lanes_hi, scale);
            for (__m512i* pair : {&pair0, &pair1}) {
              const __m512 lo = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(*pair)), 16));
              const __m512 hi = _mm512_castsi512_ps(
                  _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(*pair, 1)), 16));
              *pair = (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(hi, scale_hi), _mm512_mul_ps(lo, scale_lo));
            }
          }
          _mm512_storeu_si512(out + r * 64, pair0);
          _mm512_storeu_si512(out + r * 64 + 32, pair1);
        }
      }
      const uint16_t* b0 = weights.data();
      const uint16_t* b1 = b0 + kp * kQPanel;
      for (int64_t mb = 0; mb < m_blocks; ++mb) {
        const uint16_t* a0 = x_tiles.data() + mb * kBlockM * kp;  // two 16-row blocks of kp values
        const uint16_t* a1 = a0 + kTileRows * kp;
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (int64_t k = 0; k < kp; k += 32) {
          const int64_t next = std::min<int64_t>(k + 32, kp - 32);
          APT_FAST_TILE_STEP(_tile_dpbf16ps, a0 + k * kTileRows, a1 + k * kTileRows, b0 + k * kQPanel,
                             b1 + k * kQPanel, 64, 64, a0 + next * kTileRows, a1 + next * kTileRows,
                             b0 + next * kQPanel, b1 + next * kQPanel, 1024);
        }
        store_c(block);
        const int64_t m0 = mb * kBlockM, n0 = nb * kBlockN;
        const int64_t rows = std::min(kBlockM, m - m0), count = std::min(kBlockN, s.n - n0);
        if (count <= 0) continue;
        for (int64_t i = 0; i < rows; ++i) {
          float* t = block + i * kBlockN;
          for (int64_t c = 0; c < count; ++c) {
            const float scaled = groups > 1 ? t[c] : t[c] * a.scales[n0 + c];
            t[c] = a.bias != nullptr ? scaled + a.bias[n0 + c] : scaled;
          }
        }
        store_block(block, m0, rows, n0, count, a.y, a.y_stride, a.x_dtype);
      }
    }
  });
}

}  // namespace simd_amx
}  // namespace apt_fast
