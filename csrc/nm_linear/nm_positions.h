// Reading the packed positions of the N:M format (nm_linear.h), one row at a time: the column of each kept value,
// and for the half-dense patterns (2:4, 4:8) the bitmask of kept columns, eight columns per table lookup.
#pragma once

#include <cstdint>
#include <vector>

#include "nm_linear/nm_linear.h"

namespace apt_fast {

// The position (0 .. m-1) of kept value j of a row: `bits` bits at bit j * bits of the row's stream.
inline int nm_position(const uint8_t* row, int64_t row_bytes, int64_t j, int bits) {
  const int64_t bit = j * bits, byte = bit / 8;
  uint32_t window = row[byte];
  if (byte + 1 < row_bytes) window |= static_cast<uint32_t>(row[byte + 1]) << 8;
  return static_cast<int>((window >> (bit % 8)) & ((1u << bits) - 1u));
}

// columns[j] = the input column of kept value j of a row, j < s.kept().
inline void nm_row_columns(const NmShape& s, const uint8_t* row, int32_t* columns) {
  const int64_t kept = s.kept(), bytes = s.index_bytes();
  for (int64_t j = 0; j < kept; ++j)
    columns[j] = static_cast<int32_t>(j / s.keep * s.group + nm_position(row, bytes, j, s.bits()));
}

// Kept-column masks of the half-dense patterns: eight columns are one index byte at 2:4 (two groups) and twelve
// index bits at 4:8 (one group); a table maps those bits to the 8-bit mask of the kept columns.
class NmMaskTable {
 public:
  explicit NmMaskTable(const NmShape& s) : s_(s), chunk_bits_(8 / s.group * s.keep * s.bits()) {
    table_.resize(size_t{1} << chunk_bits_);
    const int fields = chunk_bits_ / s.bits();
    for (uint32_t v = 0; v < table_.size(); ++v) {
      uint32_t mask = 0;
      for (int f = 0; f < fields; ++f)
        mask |= 1u << (f / s.keep * s.group + ((v >> (f * s.bits())) & ((1u << s.bits()) - 1u)));
      table_[v] = static_cast<uint8_t>(mask);
    }
  }

  // Mask of columns [8 c, 8 c + 8) of a row (bit i: column 8 c + i kept).
  uint8_t chunk(const uint8_t* row, int64_t c) const {
    if (chunk_bits_ == 8) return table_[row[c]];
    const int64_t bit = c * chunk_bits_, byte = bit / 8;
    uint32_t window = row[byte];
    if (byte + 1 < s_.index_bytes()) window |= static_cast<uint32_t>(row[byte + 1]) << 8;
    return table_[(window >> (bit % 8)) & ((1u << chunk_bits_) - 1u)];
  }

  // Mask of `chunks` * 8 columns from column 8 c (chunks <= 8), columns past the row's end (k) clear.
  uint64_t columns(const uint8_t* row, int64_t c, int chunks) const {
    uint64_t mask = 0;
    for (int i = 0; i < chunks && 8 * (c + i) < s_.k; ++i) {
      uint64_t bits = chunk(row, c + i);
      const int64_t left = s_.k - 8 * (c + i);
      if (left < 8) bits &= (uint64_t{1} << left) - 1;
      mask |= bits << (8 * i);
    }
    return mask;
  }

 private:
  NmShape s_;
  int chunk_bits_;
  std::vector<uint8_t> table_;
};

}  // namespace apt_fast
