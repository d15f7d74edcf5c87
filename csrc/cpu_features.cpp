#include "cpu_features.h"

#include <atomic>
#include <cstdlib>

#include "common.h"

namespace apt_fast {

SimdLevel detected_simd_level() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bf16")) {
    return SimdLevel::Avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return SimdLevel::Avx2;
  }
#endif
  return SimdLevel::Scalar;
}

std::string simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Avx512: return "avx512";
    case SimdLevel::Avx2: return "avx2";
    default: return "scalar";
  }
}

SimdLevel parse_simd_level(const std::string& name) {
  if (name == "avx512") return SimdLevel::Avx512;
  if (name == "avx2") return SimdLevel::Avx2;
  if (name == "scalar") return SimdLevel::Scalar;
  APT_CHECK(false, "simd level must be one of 'scalar', 'avx2', 'avx512', got '" << name << "'");
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
