// The distillation-loss kernel, written once against Vec and compiled once per SIMD level.
//
// Each row is processed in at most four sweeps over its vocab; after the first the row lives in L2:
//   1. maxima of the student and teacher logits;
//   2. e = exp(x/T - max/T) for both (kept in scratch rows) and their sums -> log-sum-exps;
//   3. the divergence, and for forward KL the gradient directly;
//   4. (reverse KL and JSD) the gradient, which needs the row's divergence-weighted mean from sweep 3.
// The optional cross-entropy term uses the untempered student softmax, kept in a third scratch row.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "distill_loss/distill_loss.h"
#include "common/simd/vec.h"
#include "common/parallel_for.h"

namespace apt_fast {
namespace APT_SIMD_NS {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Calls body(j, n) for each block of Vec::size lanes starting at j, n = valid lanes (< size at the tail).
template <class Body>
inline void for_each_block(int64_t vocab, Body&& body) {
  int64_t j = 0;
  for (; j + Vec::size <= vocab; j += Vec::size) body(j, Vec::size);
  if (j < vocab) body(j, static_cast<int>(vocab - j));
}

template <class T>
inline Vec load_block(const T* p, int n, float fill) {
  return n == Vec::size ? Vec::load(p) : Vec::load_partial(p, n, fill);
}

template <class T>
inline void store_block(T* p, int n, Vec v) {
  if (n == Vec::size) v.store(p); else v.store_partial(p, n);
}

inline Vec zero_where_not_positive(Vec probability, Vec value) {
  return Vec::select(probability > Vec(0.0f), value, Vec(0.0f));
}

template <class T>
inline float to_float(const T* p) {
  return Vec::load_partial(p, 1, kNegInf).reduce_max();
}

template <class T>
void zero_row(T* grad, int64_t vocab) {
  for_each_block(vocab, [&](int64_t j, int n) { store_block(grad + j, n, Vec(0.0f)); });
}

struct RowScratch {
  std::vector<float> student, teacher, untempered;  // [vocab rounded up to Vec::size]
  explicit RowScratch(int64_t vocab, bool with_ce) {
    int64_t padded = (vocab + Vec::size - 1) / Vec::size * Vec::size;
    student.resize(padded);
    teacher.resize(padded);
    if (with_ce) untempered.resize(padded);
  }
};

// Loss (and gradient, if grad != null) of one row; returns the unscaled row loss.
template <class T>
float distill_row(const DistillLossArgs& a, const T* s, const T* t, int64_t target, RowScratch& scratch, T* grad) {
  const int64_t vocab = a.vocab;
  const float inv_t = 1.0f / a.temperature;
  const bool with_ce = a.ce_weight != 0.0f;
  float* es = scratch.student.data();
  float* et = scratch.teacher.data();
  float* e1 = with_ce ? scratch.untempered.data() : nullptr;

  // Sweep 1: maxima.
  Vec max_s(kNegInf), max_t(kNegInf);
  for_each_block(vocab, [&](int64_t j, int n) {
    max_s = Vec::max(max_s, load_block(s + j, n, kNegInf));
    max_t = Vec::max(max_t, load_block(t + j, n, kNegInf));
  });
  const float ms = max_s.reduce_max(), mt = max_t.reduce_max();
  if (ms == kNegInf || mt == kNegInf) {  // a fully masked row contributes nothing
    if (grad) zero_row(grad, vocab);
    return 0.0f;
  }

  // Sweep 2: exponentials and their sums.
  const Vec shift_s(ms * inv_t), shift_t(mt * inv_t), vinv_t(inv_t), vms(ms);
  Vec sum_s(0.0f), sum_t(0.0f), sum_1(0.0f);
  for_each_block(vocab, [&](int64_t j, int n) {
    Vec xs = load_block(s + j, n, kNegInf);
    Vec ys = exp(xs * vinv_t - shift_s);  // not fused, so the maximum maps to exp(0) = 1 exactly
    Vec yt = exp(load_block(t + j, n, kNegInf) * vinv_t - shift_t);
    ys.store(es + j);
    yt.store(et + j);
    sum_s = sum_s + ys;
    sum_t = sum_t + yt;
    if (with_ce) {
      Vec y1 = exp(xs - vms);
      y1.store(e1 + j);
      sum_1 = sum_1 + y1;
    }
  });
  const float total_s = sum_s.reduce_add(), total_t = sum_t.reduce_add();
  const float lse_s = ms * inv_t + std::log(total_s), lse_t = mt * inv_t + std::log(total_t);
  const Vec inv_sum_s(1.0f / total_s), inv_sum_t(1.0f / total_t);
  const Vec vlse_s(lse_s), vlse_t(lse_t);

  float ce_loss = 0.0f;
  Vec inv_sum_1(0.0f);
  if (with_ce) {
    const float total_1 = sum_1.reduce_add();
    ce_loss = ms + std::log(total_1) - to_float(s + target);
    inv_sum_1 = Vec(1.0f / total_1);
  }
  const Vec coef(a.alpha * a.temperature * a.grad_scale);
  const Vec ce_coef(a.ce_weight * a.grad_scale);
  // The cross-entropy part of the gradient at lanes j..j+size: ce_coef * (softmax(x) - one_hot(target)).
  auto ce_grad = [&](int64_t j) {
    if (!with_ce) return Vec(0.0f);
    Vec one_hot = Vec::select(Vec::iota() == Vec(static_cast<float>(target - j)), ce_coef, Vec(0.0f));
    return Vec::load(e1 + j) * inv_sum_1 * ce_coef - one_hot;
  };

  // Sweeps 3 and 4: divergence and gradient.
  float divergence = 0.0f;
  Vec acc(0.0f), weighted(0.0f);
  switch (a.divergence) {
    case Divergence::ForwardKL:  // sum p_t (log p_t - log p_s); d/dz = p_s - p_t
      for_each_block(vocab, [&](int64_t j, int n) {
        Vec ps = Vec::load(es + j) * inv_sum_s, pt = Vec::load(et + j) * inv_sum_t;
        Vec xs = load_block(s + j, n, 0.0f), xt = load_block(t + j, n, 0.0f);
        Vec log_ratio = (xt * vinv_t - vlse_t) - (xs * vinv_t - vlse_s);
        acc = acc + zero_where_not_positive(pt, pt * log_ratio);
        if (grad) store_block(grad + j, n, Vec::fmadd(coef, ps - pt, ce_grad(j)));
      });
      divergence = acc.reduce_add();
      break;
    case Divergence::ReverseKL: {  // sum p_s (log p_s - log p_t); d/dz = p_s (log p_s - log p_t - D)
      for_each_block(vocab, [&](int64_t j, int n) {
        Vec ps = Vec::load(es + j) * inv_sum_s;
        Vec xs = load_block(s + j, n, 0.0f), xt = load_block(t + j, n, 0.0f);
        Vec log_ratio = (xs * vinv_t - vlse_s) - (xt * vinv_t - vlse_t);
        log_ratio.store(et + j);
        acc = acc + zero_where_not_positive(ps, ps * log_ratio);
      });
      divergence = acc.reduce_add();
      if (grad) {
        const Vec d(divergence);
        for_each_block(vocab, [&](int64_t j, int n) {
          Vec ps = Vec::load(es + j) * inv_sum_s;
          Vec g = zero_where_not_positive(ps, ps * (Vec::load(et + j) - d));
          store_block(grad + j, n, Vec::fmadd(coef, g, ce_grad(j)));
        });
      }
      break;
    }
    case Divergence::JSD: {  // beta KL(p_t||m) + (1-beta) KL(p_s||m), m = beta p_t + (1-beta) p_s
      const Vec beta(a.jsd_beta), one_minus_beta(1.0f - a.jsd_beta);
      for_each_block(vocab, [&](int64_t j, int n) {
        Vec ps = Vec::load(es + j) * inv_sum_s, pt = Vec::load(et + j) * inv_sum_t;
        Vec xs = load_block(s + j, n, 0.0f), xt = load_block(t + j, n, 0.0f);
        Vec log_ps = xs * vinv_t - vlse_s;
        Vec log_pt = xt * vinv_t - vlse_t;
        Vec log_m = log(Vec::fmadd(beta, pt, one_minus_beta * ps));
        Vec g = one_minus_beta * (log_ps - log_m);  // d divergence / d p_s
        g.store(et + j);
        acc = acc + beta * zero_where_not_positive(pt, pt * (log_pt - log_m)) + zero_where_not_positive(ps, ps * g);
        weighted = weighted + zero_where_not_positive(ps, ps * g);
      });
      divergence = acc.reduce_add();
      if (grad) {
        const Vec mean_g(weighted.reduce_add());
        for_each_block(vocab, [&](int64_t j, int n) {
          Vec ps = Vec::load(es + j) * inv_sum_s;
          Vec g = zero_where_not_positive(ps, ps * (Vec::load(et + j) - mean_g));
          store_block(grad + j, n, Vec::fmadd(coef, g, ce_grad(j)));
        });
      }
      break;
    }
  }
  return a.alpha * a.temperature * a.temperature * divergence + a.ce_weight * ce_loss;
}

template <class T>
void run(const DistillLossArgs& a) {
  const T* student = static_cast<const T*>(a.student);
  const T* teacher = static_cast<const T*>(a.teacher);
  T* grad = static_cast<T*>(a.grad);
  parallel_for(a.rows, a.num_threads, [&](int64_t begin, int64_t end) {
    RowScratch scratch(a.vocab, a.ce_weight != 0.0f);
    for (int64_t row = begin; row < end; ++row) {
      T* grad_row = grad ? grad + row * a.grad_row_stride : nullptr;
      int64_t target = a.target ? a.target[row] : 0;
      if (a.target && target == a.ignore_index) {
        a.loss[row] = 0.0f;
        if (grad_row) zero_row(grad_row, a.vocab);
        continue;
      }
      a.loss[row] = distill_row(a, student + row * a.student_row_stride, teacher + row * a.teacher_row_stride,
                                target, scratch, grad_row);
    }
  });
}

}  // namespace

void distill_loss_fwd(const DistillLossArgs& a) {
  if (a.dtype == Dtype::BFloat16) run<uint16_t>(a); else run<float>(a);
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
