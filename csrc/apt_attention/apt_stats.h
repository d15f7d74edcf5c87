// The per-batch statistics stage of APT attention (APT_SPEC.md §2.2 T3-T16), fp32, forward and
// backward: the head mean M [B, T, S] -> the shared map F [B, T, S] that the final attention consumes.
//
//   X = clamp(M, -8, 8) e;  a = clamp(pw(X), -5, 5) (the piecewise-linear sr-MLP, sr_mlp_table.h);
//   τ = clamp(1 + 2.5 a, 0.5, 1.5), 1 where mask[b, 0] != 0;  G = sigmoid(τ);
//   P = softmax_row(clamp(M, -10, 10));  E = -P ln(P + 1e-6);  Fm = softmax_row(3E);  R0 = G Fm;
//   Φ = α R0 + r M + δ with the per-batch scalars of T9-T14 (norms, means, variances, max|M|, mean E);
//   F = clamp(Φ / t*, -10, 10), t* from tau and the quartiles of Φ (T15, exact selection), or
//   F = clamp(Φ, -10, 10) without the quantiles (T15-fallback), or F = clamp(M, -10, 10) when Φ' is
//   abnormal (T16).
//
// The forward saves R0 [B, T, S] and kStatsSize doubles per batch element; the backward recomputes
// the rest row by row from M and propagates dF through every global statistic into dM and the
// gradients of sr_conv1/2 and tau. Parallel over rows; every reduction is combined in row order, so
// the results do not depend on the thread count.
#pragma once

#include <cstdint>

#include "common/dispatch.h"
#include "flash_attention/attention_args.h"

namespace apt_fast {

// Layout of the per-batch scalars the forward saves for the backward (doubles).
enum AptStat : int {
  kStatNormM, kStatNormR0, kStatGamma, kStatGammaPass, kStatMeanM, kStatVarM, kStatVarMPass, kStatMeanR,
  kStatVarR, kStatVarRPass, kStatG, kStatGPre, kStatGPass, kStatMaxAbs, kStatMaxCount, kStatRhoPass, kStatC,
  kStatCPass, kStatRatio, kStatEtaPass, kStatMaxEntropy, kStatSumR0, kStatSumR0Sq, kStatAlpha, kStatDelta,
  kStatMode, kStatTemp, kStatTempPass, kStatBeta, kStatTauPass, kStatWidth, kStatWidthPass, kStatW25, kStatW75,
  kStatIdx25Lo, kStatIdx25Hi, kStatIdx75Lo, kStatIdx75Hi,
  kStatsSize
};

// kStatMode: how F was formed for this batch element.
enum AptStatsMode : int { kModeTemperature = 0, kModeFallback = 1, kModeAbnormal = 2 };

struct AptStatsArgs {
  int64_t batch = 0, q_len = 0, kv_len = 0;
  const float* m = nullptr;        // [B, T, S] contiguous head mean
  Broadcast4<const float> mask;    // additive mask broadcast to [B, H, T, S] (head 0 is read), or data == nullptr
  const float* w1 = nullptr;       // [Hd] sr_conv1.weight
  const float* b1 = nullptr;       // [Hd] sr_conv1.bias
  const float* w2 = nullptr;       // [Hd] sr_conv2.weight
  float b2 = 0.0f, tau = 1.0f;     // sr_conv2.bias, tau
  int64_t hidden = 0;              // Hd
  float scale = 0.05f;             // e = clamp(fl32(epsilon), 0.05, 0.8)
  bool quantile = true;            // false: T15-fallback (more than 2^24 elements, or a half dtype upstream)
  float* f = nullptr;              // [B, T, S] out (forward)
  float* r0 = nullptr;             // [B, T, S] out (forward), in (backward)
  double* stats = nullptr;         // [B, kStatsSize] out (forward), in (backward)
  const float* grad_f = nullptr;   // [B, T, S] (backward)
  float* grad_m = nullptr;         // [B, T, S] out (backward)
  float* grad_params = nullptr;    // [3 Hd + 2] out (backward): dw1, db1, dw2, db2, dtau
  int num_threads = 1;
};

void apt_stats_fwd(const AptStatsArgs& args);
void apt_stats_bwd(const AptStatsArgs& args);

APT_FAST_DECLARE_TIERS(void apt_stats_fwd(const AptStatsArgs& args))
APT_FAST_DECLARE_TIERS(void apt_stats_bwd(const AptStatsArgs& args))

}  // namespace apt_fast
