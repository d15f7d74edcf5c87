// APT's statistics stage (apt_stats.h), written once against Vec and compiled once per SIMD level.
//
// Forward: (1) rows in parallel: the T3-T8 maps (StatsRow), R0 saved, row partial sums; (2) per batch
// element, the scalars of T9-T14; (3) rows: Φ = α R0 + r M + δ into F; (4) batch elements: the two
// quartiles of Φ by selection and t*; (5) rows: F = clamp(Φ / t*, -10, 10) (or a fallback).
// Backward: (1) rows: sums of dy = dF · [|Φ / t*| <= 10] against 1, Φ, R0, M; (2) per batch element, the
// scalar chain back to the coefficients of dΦ -> dR0, dM; (3) rows: recompute the maps, then dM through
// both row softmaxes and the sr-MLP (per-segment sums for the weight gradients).
#include "apt_attention/apt_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/simd/vec.h"
#include "apt_attention/apt_stats_rows.h"
#include "apt_attention/apt_stats_scalars.h"
#include "flash_attention/attention_tiles.h"
#include "common/parallel_for.h"

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

// Row t of batch element b (row = b * T + t): its offset in the [B, T, S] maps and the mask row mask[b, 0, t, :].
struct RowAt {
  const AptStatsArgs& a;
  int64_t offset(int64_t row) const { return row * a.kv_len; }
  const float* mask(int64_t row) const {
    if (a.mask.data == nullptr) return nullptr;
    return a.mask.at(row / a.q_len, 0, row % a.q_len);
  }
};

SrMlpTable sr_table(const AptStatsArgs& a) {
  return SrMlpTable(a.w1, a.b1, a.w2, a.b2, a.hidden, 8.0f * a.scale);
}

// t* (T15), or 1 without the adaptive temperature.
inline float temperature_of(const double* st) {
  return st[kStatMode] == kModeTemperature ? static_cast<float>(st[kStatTemp]) : 1.0f;
}

// Φ = α R0 + r M + δ for one row, identical in forward and backward.
inline Vec phi_of(Vec r0, Vec m, const double* st) {
  return Vec(static_cast<float>(st[kStatAlpha])) * r0 + Vec(static_cast<float>(st[kStatRatio])) * m +
         Vec(static_cast<float>(st[kStatDelta]));
}

// Forward step (1) for one row: R0 and the row partial sums.
void forward_row(const AptStatsArgs& a, const SrMlpTable& table, int64_t row, StatsRow& w, StatsRowSums& sums) {
  const RowAt at{a};
  const int n = static_cast<int>(a.kv_len);
  const float* m = a.m + at.offset(row);
  w.compute(m, at.mask(row), a.mask.stride_s, n, table, a.scale);
  float* r0 = a.r0 + at.offset(row);
  Vec sum_m(0.0f), sum_r0(0.0f), sum_e(0.0f), max_abs(0.0f);
  for (int c = 0; c < n; c += Vec::size) {
    const int k = std::min(Vec::size, n - c);
    const Vec mv = load_n(m + c, k), r = load_n(w.gate.data() + c, k) * load_n(w.fm.data() + c, k);
    store_n(r0 + c, k, r);
    sum_m = sum_m + mv, sum_r0 = sum_r0 + r, sum_e = sum_e + load_n(w.entropy.data() + c, k);
    max_abs = Vec::max(max_abs, Vec::max(mv, Vec(0.0f) - mv));
  }
  sums.sum_m = sum_m.reduce_add(), sums.sum_r0 = sum_r0.reduce_add(), sums.sum_entropy = sum_e.reduce_add();
  sums.max_abs = max_abs.reduce_max();
  const float mean_m = static_cast<float>(sums.sum_m / n), mean_r0 = static_cast<float>(sums.sum_r0 / n);
  Vec m2_m(0.0f), m2_r0(0.0f);
  for (int c = 0; c < n; c += Vec::size) {
    const int k = std::min(Vec::size, n - c);
    const Vec dm = load_n(m + c, k, mean_m) - Vec(mean_m), dr = load_n(r0 + c, k, mean_r0) - Vec(mean_r0);
    m2_m = Vec::fmadd(dm, dm, m2_m), m2_r0 = Vec::fmadd(dr, dr, m2_r0);
  }
  sums.m2_m = m2_m.reduce_add(), sums.m2_r0 = m2_r0.reduce_add();
  Vec ties(0.0f);
  for (int c = 0; c < n; c += Vec::size) {  // a partial load's fill (NaN) is never a tie
    const Vec mv = load_n(m + c, std::min(Vec::size, n - c), std::numeric_limits<float>::quiet_NaN());
    ties = ties + Vec::select(Vec::max(mv, Vec(0.0f) - mv) == Vec(sums.max_abs), Vec(1.0f), Vec(0.0f));
  }
  sums.max_count = static_cast<int64_t>(ties.reduce_add());
}

// Range of the finite values and count of NaNs of Φ over some rows.
struct PhiRowSums {
  float lo = std::numeric_limits<float>::max(), hi = -std::numeric_limits<float>::max();
  int64_t nans = 0;
  void add(const PhiRowSums& o) { lo = std::min(lo, o.lo), hi = std::max(hi, o.hi), nans += o.nans; }
};

// Forward step (3) for one row: Φ into F.
PhiRowSums phi_row(const AptStatsArgs& a, int64_t row) {
  const int64_t n = a.kv_len, off = row * n;
  const double* st = a.stats + (row / a.q_len) * kStatsSize;
  const float big = std::numeric_limits<float>::max(), nan = std::numeric_limits<float>::quiet_NaN();
  Vec lo(-big), hi(-big), nans(0.0f);  // lo holds -min
  for (int64_t c = 0; c < n; c += Vec::size) {
    const int k = static_cast<int>(std::min<int64_t>(Vec::size, n - c));
    const Vec phi = phi_of(load_n(a.r0 + off + c, k), load_n(a.m + off + c, k, nan), st);  // tail lanes: NaN
    store_n(a.f + off + c, k, phi);
    const auto finite = phi - phi == Vec(0.0f);
    lo = Vec::max(lo, Vec::select(finite, Vec(0.0f) - phi, Vec(-big)));
    hi = Vec::max(hi, Vec::select(finite, phi, Vec(-big)));
    nans = nans + Vec::select(phi == phi, Vec(0.0f), Vec(1.0f));
  }
  PhiRowSums out;
  out.lo = -lo.reduce_max(), out.hi = hi.reduce_max();
  out.nans = static_cast<int64_t>(nans.reduce_add()) - (Vec::size - 1 - (n - 1) % Vec::size);
  return out;
}

// Forward step (5) for one row, from Φ (already in F) to F.
void finish_row(const AptStatsArgs& a, int64_t row) {
  const int64_t n = a.kv_len, off = row * n;
  const double* st = a.stats + (row / a.q_len) * kStatsSize;
  float* f = a.f + off;
  const bool abnormal = st[kStatMode] == kModeAbnormal;
  const float* src = abnormal ? a.m + off : f;
  const Vec temp(abnormal ? 1.0f : temperature_of(st));
  for (int64_t c = 0; c < n; c += Vec::size) {
    const int k = static_cast<int>(std::min<int64_t>(Vec::size, n - c));
    const Vec y = load_n(src + c, k) / temp;
    store_n(f + c, k, clamp(Vec::select(y == y, y, Vec(0.0f)), -10.0f, 10.0f));  // nan_to_num, clamp
  }
}

}  // namespace

void apt_stats_fwd(const AptStatsArgs& a) {
  const int64_t rows = a.batch * a.q_len, n = a.q_len * a.kv_len;
  if (rows == 0 || a.kv_len == 0) return;
  const SrMlpTable table = sr_table(a);
  std::vector<StatsRowSums> sums(rows);
  parallel_for(rows, a.num_threads, [&](int64_t begin, int64_t end) {  // (1)
    StatsRow w(a.kv_len);
    for (int64_t row = begin; row < end; ++row) forward_row(a, table, row, w, sums[row]);
  });
  for (int64_t b = 0; b < a.batch; ++b)  // (2)
    stats_forward_scalars(sums.data() + b * a.q_len, a.q_len, a.kv_len, a.stats + b * kStatsSize);
  std::vector<PhiRowSums> phi_rows(rows);
  parallel_for(rows, a.num_threads, [&](int64_t begin, int64_t end) {  // (3)
    for (int64_t row = begin; row < end; ++row) phi_rows[row] = phi_row(a, row);
  });
  parallel_for(a.batch, a.num_threads, [&](int64_t begin, int64_t end) {  // (4)
    for (int64_t b = begin; b < end; ++b) {
      double* st = a.stats + b * kStatsSize;
      PhiRowSums all;
      for (int64_t t = 0; t < a.q_len; ++t) all.add(phi_rows[b * a.q_len + t]);
      if (a.quantile && all.nans > 0) {  // torch.quantile gives NaN, so does t*, so does every Φ' (T16)
        st[kStatMode] = kModeAbnormal;
      } else if (a.quantile) {
        QuantilePick low, high;
        select_quantiles(a.f + b * n, n, 0.25f, 0.75f, all.lo, all.hi, &low, &high);
        stats_temperature_scalars(low, high, a.tau, st);
      } else {
        st[kStatMode] = static_cast<double>(all.nans) / static_cast<double>(n) > 0.2 ? kModeAbnormal : kModeFallback;
      }
    }
  });
  parallel_for(rows, a.num_threads, [&](int64_t begin, int64_t end) {  // (5)
    for (int64_t row = begin; row < end; ++row) finish_row(a, row);
  });
}

namespace {

// Backward step (1) for one row.
StatsGradRowSums grad_sums_row(const AptStatsArgs& a, int64_t row) {
  const int64_t n = a.kv_len, off = row * n;
  const double* st = a.stats + (row / a.q_len) * kStatsSize;
  const Vec temp(temperature_of(st));
  Vec dy(0.0f), dy_phi(0.0f), dy_r0(0.0f), dy_m(0.0f);
  for (int64_t c = 0; c < n; c += Vec::size) {
    const int k = static_cast<int>(std::min<int64_t>(Vec::size, n - c));
    const Vec r0 = load_n(a.r0 + off + c, k), m = load_n(a.m + off + c, k), phi = phi_of(r0, m, st);
    const Vec d = pass_within(load_n(a.grad_f + off + c, k), phi / temp, -10.0f, 10.0f);
    dy = dy + d, dy_phi = Vec::fmadd(d, phi, dy_phi), dy_r0 = Vec::fmadd(d, r0, dy_r0), dy_m = Vec::fmadd(d, m, dy_m);
  }
  return StatsGradRowSums{dy.reduce_add(), dy_phi.reduce_add(), dy_r0.reduce_add(), dy_m.reduce_add()};
}

// Per-thread sums of the sr-MLP's input gradient per segment (G0 = Σ g, G1 = Σ g X).
struct SegmentSums {
  std::vector<double> g0, g1;
  explicit SegmentSums(int64_t segments) : g0(segments, 0.0), g1(segments, 0.0) {}
};

// Adds vectors of (segment, g, X) to SegmentSums: a run of vectors whose lanes all share one segment (the
// usual case: X varies little) is summed in vector registers and flushed once; mixed vectors go lane by lane.
class SegmentRun {
 public:
  explicit SegmentRun(SegmentSums& sums) : sums_(sums) {}
  ~SegmentRun() { flush(); }

  void add(Vec segment, Vec g, Vec x) {
    const float top = segment.reduce_max(), bottom = -(Vec(0.0f) - segment).reduce_max();
    if (top == bottom) {
      if (static_cast<int>(top) != current_) flush(), current_ = static_cast<int>(top);
      g0_ = g0_ + g, g1_ = g1_ + g * x;
      return;
    }
    flush();
    float s[Vec::size], gs[Vec::size], xs[Vec::size];
    segment.store(s), g.store(gs), x.store(xs);
    for (int i = 0; i < Vec::size; ++i) {
      const int k = static_cast<int>(s[i]);
      sums_.g0[k] += gs[i], sums_.g1[k] += static_cast<double>(gs[i]) * xs[i];
    }
  }

 private:
  void flush() {
    if (current_ >= 0) sums_.g0[current_] += g0_.reduce_add(), sums_.g1[current_] += g1_.reduce_add();
    g0_ = Vec(0.0f), g1_ = Vec(0.0f), current_ = -1;
  }

  SegmentSums& sums_;
  int current_ = -1;
  Vec g0_{0.0f}, g1_{0.0f};
};

// Backward step (3) for one row: dM, and the sr-MLP's per-segment sums.
void grad_row(const AptStatsArgs& a, const SrMlpTable& table, const StatsGradCoefs& k, int64_t row, StatsRow& w,
              std::vector<float>& dphi, SegmentSums& seg) {
  const RowAt at{a};
  const int n = static_cast<int>(a.kv_len);
  const int64_t off = at.offset(row), first = (row % a.q_len) * a.kv_len;
  const double* st = a.stats + (row / a.q_len) * kStatsSize;
  const float *m = a.m + off, *r0 = a.r0 + off, *gf = a.grad_f + off;
  float* dm = a.grad_m + off;
  w.compute(m, at.mask(row), a.mask.stride_s, n, table, a.scale);
  const Vec temp(temperature_of(st));
  for (int c = 0; c < n; c += Vec::size) {  // dΦ (T15, T16)
    const int q = std::min(Vec::size, n - c);
    const Vec phi = phi_of(load_n(r0 + c, q), load_n(m + c, q), st);
    store_n(dphi.data() + c, q, pass_within(load_n(gf + c, q), phi / temp, -10.0f, 10.0f) / temp);
  }
  for (int i = 0; i < 4; ++i)
    if (k.spike[i] != 0.0f && k.spike_index[i] >= first && k.spike_index[i] < first + n)
      dphi[k.spike_index[i] - first] += k.spike[i];
  // dR0 -> dG, dFm; dM from Φ, the norm and the variance (T9-T14).
  Vec s2(0.0f);
  for (int c = 0; c < n; c += Vec::size) {
    const int q = std::min(Vec::size, n - c);
    const Vec d = load_n(dphi.data() + c, q), r = load_n(r0 + c, q), mv = load_n(m + c, q);
    const Vec dr0 = Vec(k.dphi_to_dr0) * d + Vec(k.dr0_const) + Vec(k.dr0_per_r0) * r;
    const Vec fm = load_n(w.fm.data() + c, q), g = load_n(w.gate.data() + c, q);
    const Vec dfm_v = dr0 * g;
    s2 = Vec::fmadd(dfm_v, fm, s2);
    store_n(dphi.data() + c, q, dfm_v);                                  // dphi <- dFm
    store_n(w.gate.data() + c, q, dr0 * fm * g * (Vec(1.0f) - g));       // gate <- dτ (before the mask)
    store_n(dm + c, q, Vec(k.ratio) * d + Vec(k.dm_per_m) * mv + Vec(k.dm_per_dev) * (mv - Vec(k.mean_m)));
  }
  const Vec s2v(s2.reduce_add());
  Vec s1(0.0f);
  for (int c = 0; c < n; c += Vec::size) {  // Fm = softmax(3E), E = -P ln(P + 1e-6) (T7)
    const int q = std::min(Vec::size, n - c);
    const Vec fm = load_n(w.fm.data() + c, q), p = load_n(w.p.data() + c, q);
    const Vec de = Vec(3.0f) * fm * (load_n(dphi.data() + c, q) - s2v) + Vec(k.d_entropy);
    const Vec pe = p + Vec(1e-6f);
    const Vec dp = de * (Vec(0.0f) - log(pe) - p / pe);
    s1 = Vec::fmadd(dp, p, s1);
    store_n(dphi.data() + c, q, dp);  // dphi <- dP
  }
  const Vec s1v(s1.reduce_add());
  for (int c = 0; c < n; c += Vec::size) {  // P = softmax(clamp(M, -10, 10))
    const int q = std::min(Vec::size, n - c);
    const Vec p = load_n(w.p.data() + c, q), mv = load_n(m + c, q);
    const Vec dz = pass_within(p * (load_n(dphi.data() + c, q) - s1v), mv, -10.0f, 10.0f);
    store_n(dm + c, q, load_n(dm + c, q) + dz);
  }
  SegmentRun run(seg);
  for (int c = 0; c < n; c += Vec::size) {  // T3-T6 through the sr-MLP, and max|M| (T11)
    const int q = std::min(Vec::size, n - c);
    const Vec mv = load_n(m + c, q), segment = load_n(w.segment.data() + c, q);
    Vec dpw = Vec::select(load_n(w.keep.data() + c, q) == Vec(0.0f), Vec(0.0f), load_n(w.gate.data() + c, q) * Vec(2.5f));
    dpw = pass_within(pass_within(dpw, load_n(w.tau_pre.data() + c, q), 0.5f, 1.5f), load_n(w.pw.data() + c, q), -5.0f, 5.0f);
    if (q < Vec::size) dpw = Vec::select(Vec::iota() < Vec(static_cast<float>(q)), dpw, Vec(0.0f));
    run.add(segment, dpw, load_n(w.x.data() + c, q));
    Vec d = pass_within(dpw * Vec::gather(table.slopes(), segment) * Vec(a.scale), mv, -8.0f, 8.0f);
    if (k.d_max_abs != 0.0f) {
      const Vec sign = Vec::select(mv > Vec(0.0f), Vec(k.d_max_abs), Vec::select(mv < Vec(0.0f), Vec(-k.d_max_abs), Vec(0.0f)));
      d = d + Vec::select(Vec::max(mv, Vec(0.0f) - mv) == Vec(k.max_abs), sign, Vec(0.0f));
    }
    store_n(dm + c, q, load_n(dm + c, q) + d);
  }
}

}  // namespace

// An abnormal batch element (T16: F = clamp(M, -10, 10)) gives a NaN dM, as upstream's graph does (the unused
// branch of its torch.where still carries the NaN t* or NaN Φ into 0 · NaN), and NaN parameter gradients.
void apt_stats_bwd(const AptStatsArgs& a) {
  constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
  const int64_t rows = a.batch * a.q_len, n = a.q_len * a.kv_len;
  std::fill(a.grad_params, a.grad_params + 3 * a.hidden + 2, 0.0f);
  if (rows == 0 || a.kv_len == 0) return;
  const SrMlpTable table = sr_table(a);
  auto abnormal = [&](int64_t row) { return a.stats[(row / a.q_len) * kStatsSize + kStatMode] == kModeAbnormal; };
  std::vector<StatsGradRowSums> sums(rows);
  parallel_for(rows, a.num_threads, [&](int64_t begin, int64_t end) {  // (1)
    for (int64_t row = begin; row < end; ++row)
      if (!abnormal(row)) sums[row] = grad_sums_row(a, row);
  });
  std::vector<StatsGradCoefs> coefs(a.batch);
  double d_tau = 0.0;
  for (int64_t b = 0; b < a.batch; ++b)  // (2)
    if (a.stats[b * kStatsSize + kStatMode] != kModeAbnormal)
      coefs[b] = stats_backward_scalars(a.stats + b * kStatsSize, sums.data() + b * a.q_len, a.q_len, a.kv_len,
                                        a.m + b * n, a.r0 + b * n, &d_tau);
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(a.num_threads, rows)));
  std::vector<SegmentSums> segs(threads, SegmentSums(table.segments()));
  const int64_t chunk = (rows + threads - 1) / threads;
  parallel_for(threads, threads, [&](int64_t begin, int64_t end) {  // (3)
    StatsRow w(a.kv_len);
    std::vector<float> dphi(a.kv_len);
    for (int64_t t = begin; t < end; ++t)
      for (int64_t row = t * chunk; row < std::min(rows, (t + 1) * chunk); ++row) {
        if (abnormal(row)) std::fill(a.grad_m + row * a.kv_len, a.grad_m + (row + 1) * a.kv_len, kNaN);
        else grad_row(a, table, coefs[row / a.q_len], row, w, dphi, segs[t]);
      }
  });
  for (int t = 1; t < threads; ++t)
    for (int64_t s = 0; s < table.segments(); ++s) segs[0].g0[s] += segs[t].g0[s], segs[0].g1[s] += segs[t].g1[s];
  float* g = a.grad_params;
  table.weight_grads(segs[0].g0.data(), segs[0].g1.data(), g, g + a.hidden, g + 2 * a.hidden, g + 3 * a.hidden);
  g[3 * a.hidden + 1] = static_cast<float>(d_tau);
  bool any_abnormal = false;
  for (int64_t b = 0; b < a.batch; ++b) any_abnormal |= a.stats[b * kStatsSize + kStatMode] == kModeAbnormal;
  if (any_abnormal) std::fill(g, g + 3 * a.hidden + 1 + (a.quantile ? 1 : 0), kNaN);
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
