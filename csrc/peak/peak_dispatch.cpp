#include <atomic>
#include <chrono>
#include <algorithm>
#include <vector>

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
  // ~20 ms of work per thread; a short first round takes the kernel's first-use trap for the tile state (and
  // wakes the thread team) outside the timed one.
  const int64_t iterations = tiles ? 1000000 : 4000000;
  std::atomic<double> ops{0.0};
  auto run_all = [&](int64_t rounds) {
    parallel_for(num_threads, num_threads, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const double done = tiles ? simd_amx::peak_tile_loop(kind, rounds) : simd_avx512::peak_vector_loop(kind, rounds);
        double expected = ops.load();
        while (!ops.compare_exchange_weak(expected, expected + done)) {
        }
      }
    });
  };
  run_all(iterations / 100);
  ops.store(0.0);
  const auto start = std::chrono::steady_clock::now();
  run_all(iterations);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return ops.load() / seconds;
}

double read_bytes_per_second(int64_t bytes, int num_threads) {
  APT_CHECK(bytes >= (int64_t{1} << 20), "the buffer must be at least 1 MiB, got " << bytes);
  const int64_t count = bytes / 8;
  std::vector<int64_t> data(static_cast<size_t>(count), 1);  // touched here, so the pages exist
  std::atomic<int64_t> sink{0};
  auto sum_range = [](const int64_t* p, int64_t n) -> int64_t { APT_FAST_ROUTE(read_sum, p, n); };
  auto read_all = [&] {
    parallel_for_chunks(count, 1 << 16, num_threads, [&](int64_t begin, int64_t end) {
      sink += sum_range(data.data() + begin, end - begin);
    });
  };
  read_all();  // warm-up
  double best = 0.0;
  for (int repeat = 0; repeat < 3; ++repeat) {
    const auto start = std::chrono::steady_clock::now();
    read_all();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(count * 8) / seconds);
  }
  APT_CHECK(sink.load() != -1, "unreachable");
  return best;
}

}  // namespace apt_fast
