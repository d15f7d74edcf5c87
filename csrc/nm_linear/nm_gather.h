// AVX-512 (VBMI) gathers of x for the half-dense N:M patterns (2:4, 4:8): a window of kept values fills one vector
// (16 fp32, 32 bf16 or 64 int8 values, covering 32, 64 or 128 columns, two vectors of x), and their positions
// become, in three instructions, the index that picks the matching x out of the two:
//   VPERMB      puts in each 64-bit lane the index bytes its values' bit fields start in;
//   VPMULTISHIFTQB  shifts each field to the bottom of its output byte (rotating within the lane);
//   VPTERNLOGD  keeps the field's bits and ORs in the group's first column (and a bf16 value's byte half):
// fp32: a VPERMI2PS dword index (column); bf16: a VPERMI2B byte index (2 column + byte); int8: a VPERMI2B index.
// Include only where AVX-512 VBMI is enabled.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "nm_linear/nm_linear.h"

namespace apt_fast {

enum class NmLanes { Dword, WordBytes, Bytes };  // fp32 values, bf16 values, int8 values

class NmGatherIndex {
 public:
  NmGatherIndex(const NmShape& s, NmLanes lanes) {
    const int b = s.bits();
    const int per_value = lanes == NmLanes::Dword ? 4 : lanes == NmLanes::WordBytes ? 2 : 1;  // bytes per lane
    values_ = 64 / per_value;
    columns_ = 2 * values_;
    window_bytes_ = values_ * b / 8;
    alignas(64) uint8_t perm[64], shift[64], keep[64], base[64];
    for (int byte = 0; byte < 64; ++byte) {
      const int qword = byte / 8, j = byte / per_value, part = byte % per_value;
      const int start = qword * (8 / per_value) * b / 8;  // first index byte of this lane's values
      perm[byte] = static_cast<uint8_t>(start + byte % 8 < 64 ? start + byte % 8 : 63);
      const int field = j * b - 8 * start, group_column = j / s.keep * s.group;
      shift[byte] = keep[byte] = base[byte] = 0;
      if (lanes == NmLanes::Dword && part == 0) {
        shift[byte] = static_cast<uint8_t>(field);
        keep[byte] = static_cast<uint8_t>(s.group - 1);
        base[byte] = static_cast<uint8_t>(group_column);
      } else if (lanes == NmLanes::WordBytes) {  // byte index 2 column + part: the field lands at bit 1
        shift[byte] = static_cast<uint8_t>((field + 63) % 64);
        keep[byte] = static_cast<uint8_t>((s.group - 1) << 1);
        base[byte] = static_cast<uint8_t>(2 * group_column + part);
      } else if (lanes == NmLanes::Bytes) {
        shift[byte] = static_cast<uint8_t>(field);
        keep[byte] = static_cast<uint8_t>(s.group - 1);
        base[byte] = static_cast<uint8_t>(group_column);
      }
    }
    perm_ = _mm512_load_si512(perm);
    shift_ = _mm512_load_si512(shift);
    keep_ = _mm512_load_si512(keep);
    base_ = _mm512_load_si512(base);
  }

  int values() const { return values_; }               // kept values per window
  int64_t columns() const { return columns_; }         // input columns per window
  int window_bytes() const { return window_bytes_; }  // index bytes per window

  // The gather index of the window whose index bytes start at p (`bytes` of them readable, <= window_bytes()).
  __m512i decode(const uint8_t* p, int bytes) const {
    const __m512i raw = _mm512_maskz_loadu_epi8(_cvtu64_mask64((uint64_t{1} << bytes) - 1), p);
    const __m512i fields = _mm512_multishift_epi64_epi8(shift_, _mm512_permutexvar_epi8(perm_, raw));
    return _mm512_ternarylogic_epi32(fields, keep_, base_, 0xEA);  // (fields & keep) | base
  }

 private:
  __m512i perm_, shift_, keep_, base_;
  int values_ = 0, window_bytes_ = 0;
  int64_t columns_ = 0;
};

}  // namespace apt_fast
