#include <atomic>
#include <chrono>
#include <mutex>

#include "common/parallel_for.h"
#include "peak/peak.h"

namespace apt_fast {

PeakKind parse_peak_kind(const std::string& name) {
  if (name == "fp32_fma") return PeakKind::Fp32Fma;
  if (name == "bf16_dot") return PeakKind::Bf16Dot;
  if (name == "int8_dot") return PeakKind::Int8Dot;
  if (name == "amx_bf16") return PeakKind::AmxBf16;
  if (name == "amx_int8") return PeakKind::AmxInt8;
  APT_CHECK(false, "peak kind must be fp32_fma, bf16_dot, int8_dot, amx_bf16 or amx_int8, got '" << name << "'");
  return PeakKind::Fp32Fma;
}

double peak_ops_per_second(PeakKind kind, int num_threads) {
  const bool tiles = kind == PeakKind::AmxBf16 || kind == PeakKind::AmxInt8;
  const SimdLevel level = active_simd_level();
  APT_CHECK(tiles ? level == SimdLevel::Amx : level >= SimdLevel::Avx512,
            "this peak kind needs the " << (tiles ? "amx" : "avx512") << " tier, but the kernels run at '"
                                        << simd_level_name(level) << "'");
  const int64_t iterations = tiles ? 200000 : 2000000;
  std::atomic<double> ops{0.0};
  const auto start = std::chrono::steady_clock::now();
  parallel_for(num_threads, num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const double done = tiles ? simd_amx::peak_tile_loop(kind, iterations)
                                : simd_avx512::peak_vector_loop(kind, iterations);
      double expected = ops.load();
      while (!ops.compare_exchange_weak(expected, expected + done)) {
      }
    }
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return ops.load() / seconds;
}

}  // namespace apt_fast
