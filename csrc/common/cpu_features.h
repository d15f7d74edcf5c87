// Run-time detection of the CPU's vector and matrix features, and of the tier the kernels run at.
//
// Features come from CPUID (leaves 1 and 7) and XGETBV (which register states the OS saves). AMX also
// needs Linux's per-process permission for the tile data state, asked for once with
// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); if it is refused, the CPU counts as having no AMX.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace apt_fast {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_vnni = false, avx512_bf16 = false, avx512_fp16 = false, avx512_vbmi = false, avx512_vbmi2 = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  bool os_avx = false;      // XCR0: XMM and YMM state saved
  bool os_avx512 = false;   // XCR0: opmask, ZMM_Hi256 and Hi16_ZMM state saved
  bool os_amx = false;      // XCR0: TILECFG and TILEDATA state enabled
  bool amx_permitted = false;  // Linux granted this process the tile data state (arch_prctl)

  // (name, present) for every feature above, in a fixed order, for reports.
  std::vector<std::pair<std::string, bool>> items() const;
};

// Detected once per process (the AMX permission is requested then).
const CpuFeatures& cpu_features();

// The kernel tiers, lowest first:
//   Scalar  portable code;
//   Avx2    AVX2 + FMA + F16C;
//   Avx512  AVX-512 F/BW/VL/DQ + VNNI + BF16 + VBMI/VBMI2 (Zen 4, Sapphire Rapids);
//   Amx     Avx512 plus AMX-TILE/INT8/BF16 with the OS state and permission.
enum class SimdLevel : int { Scalar = 0, Avx2 = 1, Avx512 = 2, Amx = 3 };

// The best tier this CPU supports.
SimdLevel detected_simd_level();

// The tier kernels run at: the detected one, lowered by APT_FAST_SIMD=scalar|avx2|avx512|amx or set_simd_level.
SimdLevel active_simd_level();

// Force a tier (for tests and benchmarks); throws std::invalid_argument above the detected tier.
void set_simd_level(SimdLevel level);

std::string simd_level_name(SimdLevel level);
SimdLevel parse_simd_level(const std::string& name);

}  // namespace apt_fast
