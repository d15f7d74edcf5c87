// One-lane Vec: the portable fallback, also the reference the wider levels are tested against.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace apt_fast {
namespace APT_SIMD_NS {

struct Vec {
  using Mask = bool;
  static constexpr int size = 1;
  float v;

  Vec() = default;
  Vec(float x) : v(x) {}
  static Vec broadcast(float x) { return Vec(x); }
  static Vec load(const float* p) { return Vec(*p); }
  static Vec load(const uint16_t* p) {
    uint32_t bits = static_cast<uint32_t>(*p) << 16;
    float x;
    std::memcpy(&x, &bits, sizeof(x));
    return Vec(x);
  }
  template <class T>
  static Vec load_partial(const T* p, int n, float fill) { return n > 0 ? load(p) : Vec(fill); }
  void store(float* p) const { *p = v; }
  void store(uint16_t* p) const {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    if (std::isnan(v)) {
      *p = static_cast<uint16_t>((bits >> 16) | 0x40);
      return;
    }
    bits += 0x7FFF + ((bits >> 16) & 1);
    *p = static_cast<uint16_t>(bits >> 16);
  }
  template <class T>
  void store_partial(T* p, int n) const {
    if (n > 0) store(p);
  }

  friend Vec operator+(Vec a, Vec b) { return a.v + b.v; }
  friend Vec operator-(Vec a, Vec b) { return a.v - b.v; }
  friend Vec operator*(Vec a, Vec b) { return a.v * b.v; }
  friend Vec operator/(Vec a, Vec b) { return a.v / b.v; }
  friend Mask operator<(Vec a, Vec b) { return a.v < b.v; }
  friend Mask operator>(Vec a, Vec b) { return a.v > b.v; }
  friend Mask operator==(Vec a, Vec b) { return a.v == b.v; }
  static Vec fmadd(Vec a, Vec b, Vec c) { return std::fma(a.v, b.v, c.v); }
  static Vec max(Vec a, Vec b) { return a.v > b.v ? a.v : b.v; }
  static Vec min(Vec a, Vec b) { return a.v < b.v ? a.v : b.v; }
  static Vec select(Mask m, Vec a, Vec b) { return m ? a : b; }
  float reduce_add() const { return v; }
  float reduce_max() const { return v; }
  static Vec pow2n(Vec n) { return std::ldexp(1.0f, static_cast<int>(n.v)); }
  static Vec frexp(Vec x, Vec* exponent) {
    int e = 0;
    float m = std::frexp(x.v, &e);
    *exponent = static_cast<float>(e);
    return m;
  }
  static Vec round(Vec x) { return std::nearbyint(x.v); }
};

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
