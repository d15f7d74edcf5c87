// Measured peak arithmetic rates of this machine, for benchmark reports ("% of peak"): each kind runs a loop of
// independent register-only multiply-adds (no memory traffic) on every thread at once.
#pragma once

#include <cstdint>
#include <string>

#include "common/checks.h"
#include "common/dispatch.h"

namespace apt_fast {

enum class PeakKind : int { Fp32Fma = 0, Bf16Dot = 1, Int8Dot = 2, AmxBf16 = 3, AmxInt8 = 4 };

PeakKind parse_peak_kind(const std::string& name);

// Operations per second (a multiply-add counts as 2) of `kind` on num_threads threads; throws std::invalid_argument
// for a kind this CPU (or the tier in use) lacks.
double peak_ops_per_second(PeakKind kind, int num_threads);

// Bytes per second that num_threads threads read from a buffer of `bytes` (256-byte aligned chunks spread over the
// threads; sized past the caches, it measures the memory bandwidth the GEMV kernels stream weights at).
double read_bytes_per_second(int64_t bytes, int num_threads);

// One thread's loop: `iterations` rounds, returns the operations it performed.
APT_FAST_DECLARE_TIERS(double peak_vector_loop(PeakKind kind, int64_t iterations))
APT_FAST_DECLARE_TIERS(int64_t read_sum(const int64_t* data, int64_t count))
namespace simd_amx {
double peak_tile_loop(PeakKind kind, int64_t iterations);
}

}  // namespace apt_fast
