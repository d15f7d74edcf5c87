// The per-batch scalar algebra of APT's statistics stage (apt_stats.h), in double: forward, from the
// row partial sums to the coefficients of Φ = α R0 + r M + δ and the temperature t*; backward, from
// the row sums of dF to the coefficients that turn dΦ into dM row by row. Torch-free, SIMD-free.
#pragma once

#include <cmath>
#include <cstdint>

#include "apt_attention/apt_stats.h"
#include "apt_attention/quantile_select.h"

namespace apt_fast {

// Partial sums of one row of M (S entries), combined in row order per batch element.
struct StatsRowSums {
  double sum_m = 0, m2_m = 0;      // Σ M and Σ (M - row mean)²
  double sum_r0 = 0, m2_r0 = 0;    // the same for R0
  double sum_entropy = 0;          // Σ E
  float max_abs = 0;               // max |M|
  int64_t max_count = 0;           // entries with |M| == max_abs
};

// Backward partial sums of one row: dy = dF where |Φ / t*| <= 10 (t* = 1 without the temperature).
struct StatsGradRowSums {
  double dy = 0, dy_phi = 0, dy_r0 = 0, dy_m = 0;  // Σ dy, Σ dy Φ, Σ dy R0, Σ dy M
};

// What the backward's row pass needs for one batch element.
struct StatsGradCoefs {
  float ratio = 0;                            // dM += r dΦ
  float dphi_to_dr0 = 0, dr0_const = 0, dr0_per_r0 = 0;  // dR0 = a dΦ + b + c R0
  float d_entropy = 0;                        // uniform dE (through mean E)
  float dm_per_m = 0, dm_per_dev = 0, mean_m = 0;  // dM += u M + v (M - mean M)
  float d_max_abs = 0, max_abs = 0;           // dM += d_max_abs sign(M) where |M| == max_abs
  int64_t spike_index[4] = {0, 0, 0, 0};      // dΦ += spike at the quantiles' order statistics
  float spike[4] = {0, 0, 0, 0};
};

namespace stats_detail {

inline double clamp(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }  // NaN stays NaN
inline double within(double x, double lo, double hi) { return x >= lo && x <= hi ? 1.0 : 0.0; }

}  // namespace stats_detail

// T9-T14 from the rows of one batch element: fills st[kStatNormM .. kStatDelta].
inline void stats_forward_scalars(const StatsRowSums* rows, int64_t t_len, int64_t s_len, double* st) {
  using namespace stats_detail;
  const double n = static_cast<double>(t_len * s_len), per_row = static_cast<double>(s_len);
  double sum_m = 0, m2_m = 0, sum_r0 = 0, m2_r0 = 0, sum_e = 0, sq_m = 0, sq_r0 = 0, count = 0;
  float max_abs = 0;
  for (int64_t t = 0; t < t_len; ++t) {  // Chan's pairwise combination of (count, mean, M2)
    const StatsRowSums& r = rows[t];
    const double seen = static_cast<double>(t) * per_row, total = seen + per_row;
    if (t > 0) {
      const double dm = r.sum_m / per_row - sum_m / seen, dr = r.sum_r0 / per_row - sum_r0 / seen;
      m2_m += dm * dm * seen * per_row / total;
      m2_r0 += dr * dr * seen * per_row / total;
    }
    sum_m += r.sum_m, m2_m += r.m2_m, sum_r0 += r.sum_r0, m2_r0 += r.m2_r0, sum_e += r.sum_entropy;
    sq_m += r.m2_m + r.sum_m * r.sum_m / per_row;
    sq_r0 += r.m2_r0 + r.sum_r0 * r.sum_r0 / per_row;
    if (r.max_abs > max_abs) max_abs = r.max_abs, count = 0;
    if (r.max_abs == max_abs) count += static_cast<double>(r.max_count);
  }
  const double norm_m = std::sqrt(sq_m), norm_r0 = std::sqrt(sq_r0);
  const double gamma_pre = (norm_m + 1e-4) / (norm_r0 + 1e-4), gamma = clamp(gamma_pre, 0.8, 1.2);  // T9
  const double mean_m = sum_m / n, var_m = m2_m / n, mean_r = gamma * sum_r0 / n;  // T10
  const double var_r = gamma * gamma * m2_r0 / n;
  const double vm = std::max(var_m, 0.01), vr = std::max(var_r, 0.01);
  const double g_pre = std::sqrt(vm) / std::sqrt(vr), g = clamp(g_pre, 0.8, 1.2);
  const double rho = clamp(max_abs, 1.0, 10.0), c_pre = 0.3 * (1.0 / std::log(1.0 + rho));  // T11
  const double c = clamp(c_pre, 0.1, 0.5);
  const double max_entropy = -std::log(static_cast<double>(static_cast<float>(1.0 / per_row)));  // T13
  const double eta = (sum_e / n) / max_entropy, ratio = 0.4 + clamp(eta, 0.0, 0.4);
  const double k = c * g;  // T12, T14: Φ = (1 - r)(μ_R + k (γ R0 - μ_R)) + r M
  st[kStatNormM] = norm_m, st[kStatNormR0] = norm_r0, st[kStatGamma] = gamma;
  st[kStatGammaPass] = within(gamma_pre, 0.8, 1.2);
  st[kStatMeanM] = mean_m, st[kStatVarM] = vm, st[kStatVarMPass] = var_m >= 0.01 ? 1.0 : 0.0;
  st[kStatMeanR] = mean_r, st[kStatVarR] = vr, st[kStatVarRPass] = var_r >= 0.01 ? 1.0 : 0.0;
  st[kStatG] = g, st[kStatGPre] = g_pre, st[kStatGPass] = within(g_pre, 0.8, 1.2);
  st[kStatMaxAbs] = max_abs, st[kStatMaxCount] = count, st[kStatRhoPass] = within(max_abs, 1.0, 10.0);
  st[kStatC] = c, st[kStatCPass] = within(c_pre, 0.1, 0.5);
  st[kStatRatio] = ratio, st[kStatEtaPass] = within(eta, 0.0, 0.4), st[kStatMaxEntropy] = max_entropy;
  st[kStatSumR0] = sum_r0, st[kStatSumR0Sq] = sq_r0;
  st[kStatAlpha] = (1.0 - ratio) * k * gamma, st[kStatDelta] = (1.0 - ratio) * (1.0 - k) * mean_r;
}

// T15 from the quartiles of Φ and tau: fills the temperature entries and sets the mode (abnormal when
// t* is NaN: then every Φ' is NaN, T16).
inline void stats_temperature_scalars(const QuantilePick& low, const QuantilePick& high, float tau, double* st) {
  using namespace stats_detail;
  const double width_raw = static_cast<double>(high.value) - low.value, width = clamp(width_raw, 0.5, 5.0);
  const double beta = clamp(tau, 1.0, 1.5), pre = beta * (1.0 + 0.1 * std::log1p(width));
  const double temp = clamp(pre, 1.0, 2.0);
  st[kStatTemp] = temp, st[kStatTempPass] = within(pre, 1.0, 2.0);
  st[kStatBeta] = beta, st[kStatTauPass] = within(tau, 1.0, 1.5);
  st[kStatWidth] = width, st[kStatWidthPass] = within(width_raw, 0.5, 5.0);
  st[kStatW25] = low.weight, st[kStatW75] = high.weight;
  st[kStatIdx25Lo] = static_cast<double>(low.lo_index), st[kStatIdx25Hi] = static_cast<double>(low.hi_index);
  st[kStatIdx75Lo] = static_cast<double>(high.lo_index), st[kStatIdx75Hi] = static_cast<double>(high.hi_index);
  st[kStatMode] = std::isnan(temp) ? kModeAbnormal : kModeTemperature;
}

// The backward's per-batch solve: from the row sums of dy (and M, R0 at the quantiles' order statistics)
// to the row-pass coefficients; adds this batch element's tau gradient to *d_tau.
inline StatsGradCoefs stats_backward_scalars(const double* st, const StatsGradRowSums* rows, int64_t t_len,
                                             int64_t s_len, const float* m, const float* r0, double* d_tau) {
  const double n = static_cast<double>(t_len * s_len);
  StatsGradRowSums sums;
  for (int64_t t = 0; t < t_len; ++t)
    sums.dy += rows[t].dy, sums.dy_phi += rows[t].dy_phi, sums.dy_r0 += rows[t].dy_r0, sums.dy_m += rows[t].dy_m;
  StatsGradCoefs out;
  const bool temperature = st[kStatMode] == kModeTemperature;
  const float temp = temperature ? static_cast<float>(st[kStatTemp]) : 1.0f;
  // dΦ = dy / t* plus the quantile spikes; S1 = Σ dΦ, SR = Σ dΦ R0, SM = Σ dΦ M.
  double s1 = sums.dy / temp, sr = sums.dy_r0 / temp, sm = sums.dy_m / temp;
  if (temperature) {
    const double d_pre = -sums.dy_phi / (static_cast<double>(temp) * temp) * st[kStatTempPass];  // T15
    *d_tau += d_pre * (1.0 + 0.1 * std::log1p(st[kStatWidth])) * st[kStatTauPass];
    const double d_width = d_pre * st[kStatBeta] * 0.1 / (1.0 + st[kStatWidth]) * st[kStatWidthPass];
    const double w25 = st[kStatW25], w75 = st[kStatW75];
    const double spikes[4] = {-d_width * (1.0 - w25), -d_width * w25, d_width * (1.0 - w75), d_width * w75};
    const int slots[4] = {kStatIdx25Lo, kStatIdx25Hi, kStatIdx75Lo, kStatIdx75Hi};
    for (int i = 0; i < 4; ++i) {
      const int64_t at = static_cast<int64_t>(st[slots[i]]);
      out.spike_index[i] = at, out.spike[i] = static_cast<float>(spikes[i]);
      s1 += spikes[i], sr += spikes[i] * r0[at], sm += spikes[i] * m[at];
    }
  }
  const double gamma = st[kStatGamma], mean_r = st[kStatMeanR], ratio = st[kStatRatio];
  const double g = st[kStatG], c = st[kStatC], k = c * g;
  const double dev = gamma * sr - mean_r * s1;  // Σ dΦ (R - μ_R)
  const double dk = (1.0 - ratio) * dev, d_mean_r = (1.0 - k) * (1.0 - ratio) * s1;  // T12
  const double d_ratio = sm - mean_r * s1 - k * dev;  // T14: Σ dΦ (M - U)
  out.d_entropy = static_cast<float>(d_ratio * st[kStatEtaPass] / st[kStatMaxEntropy] / n);  // T13
  const double rho = std::min(std::max(st[kStatMaxAbs], 1.0), 10.0), log_rho = std::log(1.0 + rho);  // T11
  const double d_rho = dk * g * st[kStatCPass] * (-0.3 / (log_rho * log_rho)) / (1.0 + rho);
  out.d_max_abs = static_cast<float>(d_rho * st[kStatRhoPass] / st[kStatMaxCount]);
  out.max_abs = static_cast<float>(st[kStatMaxAbs]);
  const double vm = st[kStatVarM], vr = st[kStatVarR], dg_pre = dk * c * st[kStatGPass];  // T10
  const double d_var_m = dg_pre / (2.0 * std::sqrt(vm) * std::sqrt(vr)) * st[kStatVarMPass];
  const double d_var_r = -dg_pre * st[kStatGPre] / (2.0 * vr) * st[kStatVarRPass];
  // dR = kd dΦ + a1 + a2 (γ R0 - μ_R), R = γ R0 (T9).
  const double kd = k * (1.0 - ratio), a1 = d_mean_r / n, a2 = 2.0 * d_var_r / n;
  const double d_gamma = (kd * sr + a1 * st[kStatSumR0] + a2 * (gamma * st[kStatSumR0Sq] - mean_r * st[kStatSumR0])) *
                         st[kStatGammaPass];
  const double norm_m = st[kStatNormM], norm_r0 = st[kStatNormR0];
  const double d_norm_m = d_gamma / (norm_r0 + 1e-4);
  const double d_norm_r0 = -d_gamma * (norm_m + 1e-4) / ((norm_r0 + 1e-4) * (norm_r0 + 1e-4));
  out.ratio = static_cast<float>(ratio);
  out.dphi_to_dr0 = static_cast<float>(gamma * kd);
  out.dr0_const = static_cast<float>(gamma * (a1 - a2 * mean_r));
  out.dr0_per_r0 = static_cast<float>(gamma * a2 * gamma + (norm_r0 > 0 ? d_norm_r0 / norm_r0 : 0.0));
  out.dm_per_m = static_cast<float>(norm_m > 0 ? d_norm_m / norm_m : 0.0);
  out.dm_per_dev = static_cast<float>(2.0 * d_var_m / n);
  out.mean_m = static_cast<float>(st[kStatMeanM]);
  return out;
}

}  // namespace apt_fast
