// Packing 8-bit weights into the panels of quantized_linear.h, and back to the canonical row-major layout.
#include <cmath>
#include <cstring>

#include "common/parallel_for.h"
#include "quantized_linear/quantized_linear.h"

namespace apt_fast {
namespace {

// Offset of (channel c, input k) inside a 16-channel Int8Panel: VNNI-4.
inline int64_t int8_offset(int64_t c, int64_t k) { return (k / 4) * 64 + c * 4 + k % 4; }

// Offset of (channel c, input k) inside a 16-channel CodePanel: VNNI-2 rows interleaved in 8-byte pieces.
inline int64_t code_offset(int64_t c, int64_t k) {
  const int64_t pair_row = k / 2, byte_in_row = c * 2 + k % 2;  // k-pair row: 32 bytes
  const int64_t row = pair_row / 2, piece = (byte_in_row / 8) * 2 + pair_row % 2;
  return row * 64 + piece * 8 + byte_in_row % 8;
}

// Calls fill(panel, panel_data) for each 16-channel panel, panels split over threads.
template <class Fill>
void for_each_panel(const QuantizedShape& s, int num_threads, Fill fill) {
  parallel_for(s.np() / kQPanel, num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) fill(p, p * s.kp() * kQPanel);
  });
}

float bf16_to_float(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

}  // namespace

void pack_int8_panels(const QuantizedShape& s, const int8_t* q, int8_t* panels, int32_t* compensation,
                      int num_threads) {
  const int64_t np = s.np(), kp = s.kp(), groups = s.groups();
  for_each_panel(s, num_threads, [&](int64_t p, int64_t base) {
    std::memset(panels + base, 0, kp * kQPanel);
    for (int64_t c = 0; c < kQPanel; ++c) {
      const int64_t n = p * kQPanel + c;
      for (int64_t g = 0; g < groups; ++g) {
        int32_t sum = 0;
        for (int64_t k = g * s.group_size; n < s.n && k < (g + 1) * s.group_size; ++k) {
          const int8_t w = q[n * s.k + k];
          panels[base + int8_offset(c, k)] = w;
          sum += w;
        }
        compensation[g * np + n] = 128 * sum;
      }
    }
  });
}

void unpack_int8_panels(const QuantizedShape& s, const int8_t* panels, int8_t* q, int num_threads) {
  for_each_panel(s, num_threads, [&](int64_t p, int64_t base) {
    for (int64_t c = 0; c < kQPanel && p * kQPanel + c < s.n; ++c)
      for (int64_t k = 0; k < s.k; ++k) q[(p * kQPanel + c) * s.k + k] = panels[base + int8_offset(c, k)];
  });
}

void pack_code_panels(const QuantizedShape& s, const uint8_t* codes, uint8_t* panels, int num_threads) {
  for_each_panel(s, num_threads, [&](int64_t p, int64_t base) {
    std::memset(panels + base, 0, s.kp() * kQPanel);
    for (int64_t c = 0; c < kQPanel && p * kQPanel + c < s.n; ++c) {
      const uint8_t* row = codes + (p * kQPanel + c) * s.k;
      for (int64_t k = 0; k < s.k; ++k)
        panels[base + code_offset(c, k)] = row[k];
    }
  });
}

void unpack_code_panels(const QuantizedShape& s, const uint8_t* panels, uint8_t* codes, int num_threads) {
  for_each_panel(s, num_threads, [&](int64_t p, int64_t base) {
    for (int64_t c = 0; c < kQPanel && p * kQPanel + c < s.n; ++c) {
      uint8_t* row = codes + (p * kQPanel + c) * s.k;
      for (int64_t k = 0; k < s.k; ++k) row[k] = panels[base + code_offset(c, k)];
    }
  });
}

void pack_scales(const QuantizedShape& s, const float* scales, float* packed) {
  const int64_t np = s.np(), groups = s.groups();
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t n = 0; n < np; ++n) packed[g * np + n] = n < s.n ? scales[n * groups + g] : 0.0f;
}

uint16_t code_magnitude_bf16(CodeFormat format, int code) {
  code &= 0x7f;
  // FP8: exponent bits e, mantissa bits m (e4m3fn: 4, 3, bias 7; e5m2: 5, 2, bias 15).
  const int mantissa_bits = format == CodeFormat::E4M3 ? 3 : 2;
  const int bias = format == CodeFormat::E4M3 ? 7 : 15;
  const int exponent = code >> mantissa_bits, mantissa = code & ((1 << mantissa_bits) - 1);
  const bool all_ones = exponent == (1 << (7 - mantissa_bits)) - 1;
  if (format == CodeFormat::E4M3 && code == 0x7f) return 0x7fc0;  // e4m3fn: S.1111.111 is NaN, no infinities
  if (format == CodeFormat::E5M2 && all_ones) return mantissa == 0 ? 0x7f80 : 0x7fc0;  // inf, NaN
  float value = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), 1 - bias - mantissa_bits)
                              : std::ldexp(1.0f + std::ldexp(static_cast<float>(mantissa), -mantissa_bits),
                                           exponent - bias);
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return static_cast<uint16_t>(bits >> 16);  // exact: at most 3 mantissa bits
}

float code_value(CodeFormat format, uint8_t code) {
  const float magnitude = bf16_to_float(code_magnitude_bf16(format, code & 0x7f));
  return code & 0x80 ? -magnitude : magnitude;
}

}  // namespace apt_fast

namespace apt_fast {

void dequantize_int8_panels(const QuantizedShape& s, const int8_t* panels, const float* scales, const int64_t* rows,
                            int64_t count, float* out, int num_threads) {
  const int64_t np = s.np(), kp = s.kp();
  parallel_for(count, num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t n = rows[i], c = n % kQPanel;
      const int8_t* panel = panels + (n / kQPanel) * kp * kQPanel;
      float* dst = out + i * s.k;
      for (int64_t k = 0; k < s.k; ++k)
        dst[k] = static_cast<float>(panel[int8_offset(c, k)]) * scales[(k / s.group_size) * np + n];
    }
  });
}

void dequantize_code_panels(const QuantizedShape& s, CodeFormat format, const uint8_t* panels, const float* scales,
                            const int64_t* rows, int64_t count, float* out, int num_threads) {
  const int64_t np = s.np(), kp = s.kp();
  float values[256];
  for (int code = 0; code < 256; ++code) values[code] = code_value(format, static_cast<uint8_t>(code));
  parallel_for(count, num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t n = rows[i], c = n % kQPanel;
      const uint8_t* panel = panels + (n / kQPanel) * kp * kQPanel;
      float* dst = out + i * s.k;
      for (int64_t k = 0; k < s.k; ++k) dst[k] = values[panel[code_offset(c, k)]] * scales[(k / s.group_size) * np + n];
    }
  });
}

}  // namespace apt_fast
