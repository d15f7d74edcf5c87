#include "common/cpu_features.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>

#include "common/checks.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define APT_FAST_X86 1
#endif
#if defined(__linux__) && defined(APT_FAST_X86)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace apt_fast {
namespace {

#ifdef APT_FAST_X86
struct CpuidRegs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(uint32_t leaf, uint32_t subleaf) {
  CpuidRegs r;
  if (leaf > __get_cpuid_max(leaf & 0x80000000u, nullptr)) return r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool bit(uint32_t word, int index) { return (word >> index) & 1u; }

// Asks Linux for the AMX tile data state (XFEATURE_XTILEDATA = 18) for this process; true when granted.
bool request_amx_permission() {
#if defined(__linux__)
  constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
  unsigned long permitted = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &permitted) != 0) return false;
  return (permitted >> kXfeatureXtiledata) & 1ul;
#else
  return false;
#endif
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef APT_FAST_X86
  const CpuidRegs leaf1 = cpuid(1, 0);
  const bool osxsave = bit(leaf1.ecx, 27);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  f.os_avx = (xcr0 & 0x6) == 0x6;          // bits 1-2: XMM, YMM
  f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;  // bits 5-7: opmask, ZMM_Hi256, Hi16_ZMM
  f.os_amx = (xcr0 & 0x60000) == 0x60000;  // bits 17-18: TILECFG, TILEDATA
  f.fma = bit(leaf1.ecx, 12);
  f.f16c = bit(leaf1.ecx, 29);
  const CpuidRegs leaf7 = cpuid(7, 0);
  const CpuidRegs leaf7_1 = cpuid(7, 1);
  f.avx2 = bit(leaf7.ebx, 5);
  f.avx512f = bit(leaf7.ebx, 16);
  f.avx512dq = bit(leaf7.ebx, 17);
  f.avx512bw = bit(leaf7.ebx, 30);
  f.avx512vl = bit(leaf7.ebx, 31);
  f.avx512_vbmi = bit(leaf7.ecx, 1);
  f.avx512_vbmi2 = bit(leaf7.ecx, 6);
  f.avx512_vnni = bit(leaf7.ecx, 11);
  f.avx512_fp16 = bit(leaf7.edx, 23);
  f.amx_bf16 = bit(leaf7.edx, 22);
  f.amx_tile = bit(leaf7.edx, 24);
  f.amx_int8 = bit(leaf7.edx, 25);
  f.avx512_bf16 = bit(leaf7_1.eax, 5);
  if (f.amx_tile && f.os_amx) f.amx_permitted = request_amx_permission();
#endif
  return f;
}

bool supports(const CpuFeatures& f, SimdLevel level) {
  const bool avx2 = f.os_avx && f.avx2 && f.fma && f.f16c;
  const bool avx512 = avx2 && f.os_avx512 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq &&
                      f.avx512_vnni && f.avx512_bf16 && f.avx512_vbmi && f.avx512_vbmi2;
  const bool amx = avx512 && f.amx_tile && f.amx_int8 && f.amx_bf16 && f.os_amx && f.amx_permitted;
  switch (level) {
    case SimdLevel::Amx: return amx;
    case SimdLevel::Avx512: return avx512;
    case SimdLevel::Avx2: return avx2;
    default: return true;
  }
}

}  // namespace

std::vector<std::pair<std::string, bool>> CpuFeatures::items() const {
  return {{"avx2", avx2},           {"fma", fma},
          {"f16c", f16c},           {"avx512f", avx512f},
          {"avx512bw", avx512bw},   {"avx512vl", avx512vl},
          {"avx512dq", avx512dq},   {"avx512_vnni", avx512_vnni},
          {"avx512_bf16", avx512_bf16}, {"avx512_fp16", avx512_fp16},
          {"avx512_vbmi", avx512_vbmi}, {"avx512_vbmi2", avx512_vbmi2},
          {"amx_tile", amx_tile},   {"amx_int8", amx_int8},
          {"amx_bf16", amx_bf16},   {"os_avx", os_avx},
          {"os_avx512", os_avx512}, {"os_amx", os_amx},
          {"amx_permitted", amx_permitted}};
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

SimdLevel detected_simd_level() {
  for (SimdLevel level : {SimdLevel::Amx, SimdLevel::Avx512, SimdLevel::Avx2}) {
    if (supports(cpu_features(), level)) return level;
  }
  return SimdLevel::Scalar;
}

std::string simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Amx: return "amx";
    case SimdLevel::Avx512: return "avx512";
    case SimdLevel::Avx2: return "avx2";
    default: return "scalar";
  }
}

SimdLevel parse_simd_level(const std::string& name) {
  for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512, SimdLevel::Amx}) {
    if (name == simd_level_name(level)) return level;
  }
  APT_CHECK(false, "simd level must be one of 'scalar', 'avx2', 'avx512', 'amx', got '" << name << "'");
  return SimdLevel::Scalar;
}

namespace {

SimdLevel initial_level() {
  SimdLevel level = detected_simd_level();
  const char* env = std::getenv("APT_FAST_SIMD");
  if (env != nullptr && *env != '\0') {
    SimdLevel wanted = parse_simd_level(env);
    if (static_cast<int>(wanted) < static_cast<int>(level)) level = wanted;
  }
  return level;
}

std::atomic<int>& level_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_level())};
  return slot;
}

}  // namespace

SimdLevel active_simd_level() { return static_cast<SimdLevel>(level_slot().load()); }

void set_simd_level(SimdLevel level) {
  SimdLevel best = detected_simd_level();
  APT_CHECK(static_cast<int>(level) <= static_cast<int>(best),
            "simd level '" << simd_level_name(level) << "' is not supported by this CPU (best: '"
                           << simd_level_name(best) << "')");
  level_slot().store(static_cast<int>(level));
}

}  // namespace apt_fast
