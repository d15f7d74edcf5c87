// exp and log for any Vec, accurate to about 1 ulp in float32 (Cephes-style range reduction and
// minimax polynomials). exp returns exactly 0 below the float32 underflow, so -inf logits give 0.
#pragma once

#include <limits>

namespace apt_fast {
namespace APT_SIMD_NS {

inline Vec exp(Vec x) {
  const Vec underflow(-87.3365447505f);
  Vec clamped = Vec::min(x, Vec(88.3762626647949f));
  Vec n = Vec::round(clamped * Vec(1.44269504088896341f));
  Vec r = Vec::fmadd(n, Vec(-0.693359375f), clamped);
  r = Vec::fmadd(n, Vec(2.12194440e-4f), r);
  Vec p(1.9875691500e-4f);
  p = Vec::fmadd(p, r, Vec(1.3981999507e-3f));
  p = Vec::fmadd(p, r, Vec(8.3334519073e-3f));
  p = Vec::fmadd(p, r, Vec(4.1665795894e-2f));
  p = Vec::fmadd(p, r, Vec(1.6666665459e-1f));
  p = Vec::fmadd(p, r, Vec(5.0000001201e-1f));
  p = Vec::fmadd(p * r, r, r + Vec(1.0f));
  Vec result = p * Vec::pow2n(n);
  return Vec::select(x < underflow, Vec(0.0f), result);
}

inline Vec log(Vec x) {
  Vec exponent;
  Vec m = Vec::frexp(x, &exponent);
  auto below = m < Vec(0.707106781186547524f);
  exponent = Vec::select(below, exponent - Vec(1.0f), exponent);
  m = Vec::select(below, m + m - Vec(1.0f), m - Vec(1.0f));
  Vec z = m * m;
  Vec p(7.0376836292e-2f);
  p = Vec::fmadd(p, m, Vec(-1.1514610310e-1f));
  p = Vec::fmadd(p, m, Vec(1.1676998740e-1f));
  p = Vec::fmadd(p, m, Vec(-1.2420140846e-1f));
  p = Vec::fmadd(p, m, Vec(1.4249322787e-1f));
  p = Vec::fmadd(p, m, Vec(-1.6668057665e-1f));
  p = Vec::fmadd(p, m, Vec(2.0000714765e-1f));
  p = Vec::fmadd(p, m, Vec(-2.4999993993e-1f));
  p = Vec::fmadd(p, m, Vec(3.3333331174e-1f));
  Vec y = p * m * z;
  y = Vec::fmadd(exponent, Vec(-2.12194440e-4f), y);
  y = Vec::fmadd(z, Vec(-0.5f), y);
  Vec result = Vec::fmadd(exponent, Vec(0.693359375f), m + y);
  return Vec::select(x == Vec(0.0f), Vec(-std::numeric_limits<float>::infinity()), result);
}

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
