// Portable Vec of eight floats in plain arrays: the fallback for CPUs without AVX2. Eight independent
// lanes keep its sums as accurate as the wider levels' (and let the compiler use SSE2).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace apt_fast {
namespace APT_SIMD_NS {

struct Vec {
  static constexpr int size = 8;
  struct Mask {
    bool lane[size];
  };
  float v[size];

  Vec() = default;
  Vec(float x) {
    for (float& lane : v) lane = x;
  }
  static Vec broadcast(float x) { return Vec(x); }
  static float bf16_to_float(uint16_t h) {
    uint32_t bits = static_cast<uint32_t>(h) << 16;
    float x;
    std::memcpy(&x, &bits, sizeof(x));
    return x;
  }
  static uint16_t float_to_bf16(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof(bits));
    if (std::isnan(x)) return static_cast<uint16_t>((bits >> 16) | 0x40);
    bits += 0x7FFF + ((bits >> 16) & 1);  // round to nearest even
    return static_cast<uint16_t>(bits >> 16);
  }
  static Vec load(const float* p) { return load_partial(p, size, 0.0f); }
  static Vec load(const uint16_t* p) { return load_partial(p, size, 0.0f); }
  static Vec load_partial(const float* p, int n, float fill) {
    Vec r;
    for (int i = 0; i < size; ++i) r.v[i] = i < n ? p[i] : fill;
    return r;
  }
  static Vec load_partial(const uint16_t* p, int n, float fill) {
    Vec r;
    for (int i = 0; i < size; ++i) r.v[i] = i < n ? bf16_to_float(p[i]) : fill;
    return r;
  }
  void store(float* p) const { store_partial(p, size); }
  void stream(float* p) const { store(p); }
  static void fence() {}
  void store(uint16_t* p) const { store_partial(p, size); }
  void store_partial(float* p, int n) const {
    for (int i = 0; i < n; ++i) p[i] = v[i];
  }
  void store_partial(uint16_t* p, int n) const {
    for (int i = 0; i < n; ++i) p[i] = float_to_bf16(v[i]);
  }

  template <class F>
  static Vec map(Vec a, Vec b, F f) {
    Vec r;
    for (int i = 0; i < size; ++i) r.v[i] = f(a.v[i], b.v[i]);
    return r;
  }
  template <class F>
  static Mask compare(Vec a, Vec b, F f) {
    Mask m;
    for (int i = 0; i < size; ++i) m.lane[i] = f(a.v[i], b.v[i]);
    return m;
  }
  friend Vec operator+(Vec a, Vec b) { return map(a, b, [](float x, float y) { return x + y; }); }
  friend Vec operator-(Vec a, Vec b) { return map(a, b, [](float x, float y) { return x - y; }); }
  friend Vec operator*(Vec a, Vec b) { return map(a, b, [](float x, float y) { return x * y; }); }
  friend Vec operator/(Vec a, Vec b) { return map(a, b, [](float x, float y) { return x / y; }); }
  friend Mask operator<(Vec a, Vec b) { return compare(a, b, [](float x, float y) { return x < y; }); }
  friend Mask operator>(Vec a, Vec b) { return compare(a, b, [](float x, float y) { return x > y; }); }
  friend Mask operator==(Vec a, Vec b) { return compare(a, b, [](float x, float y) { return x == y; }); }
  static Vec fmadd(Vec a, Vec b, Vec c) {
    Vec r;
    for (int i = 0; i < size; ++i) r.v[i] = std::fma(a.v[i], b.v[i], c.v[i]);
    return r;
  }
  static Vec max(Vec a, Vec b) { return map(a, b, [](float x, float y) { return x > y ? x : y; }); }
  static Vec min(Vec a, Vec b) { return map(a, b, [](float x, float y) { return x < y ? x : y; }); }
  static Vec select(Mask m, Vec a, Vec b) {
    Vec r;
    for (int i = 0; i < size; ++i) r.v[i] = m.lane[i] ? a.v[i] : b.v[i];
    return r;
  }
  static bool any(Mask m) {
    for (bool lane : m.lane)
      if (lane) return true;
    return false;
  }
  static Vec gather(const float* base, Vec index) {
    Vec out;
    for (int i = 0; i < size; ++i) out.v[i] = base[static_cast<int>(index.v[i])];
    return out;
  }
  float reduce_add() const {
    float s = 0.0f;
    for (float lane : v) s += lane;
    return s;
  }
  float reduce_max() const {
    float m = v[0];
    for (float lane : v) m = lane > m ? lane : m;
    return m;
  }
  template <class T>
  static Vec expand(const T* packed, unsigned bits) {
    Vec r;
    for (int i = 0; i < size; ++i) r.v[i] = (bits >> i) & 1 ? to_float(*packed++) : 0.0f;
    return r;
  }
  static float to_float(float x) { return x; }
  static float to_float(uint16_t h) { return bf16_to_float(h); }
  static Vec compress(Vec v, unsigned bits) {
    Vec r(0.0f);
    int next = 0;
    for (int i = 0; i < size; ++i)
      if ((bits >> i) & 1) r.v[next++] = v.v[i];
    return r;
  }
  static Vec iota() {
    Vec r;
    for (int i = 0; i < size; ++i) r.v[i] = static_cast<float>(i);
    return r;
  }
  static Vec pow2n(Vec n) {
    Vec r;
    for (int i = 0; i < size; ++i) r.v[i] = std::ldexp(1.0f, static_cast<int>(n.v[i]));
    return r;
  }
  static Vec frexp(Vec x, Vec* exponent) {
    Vec r;
    for (int i = 0; i < size; ++i) {
      int e = 0;
      r.v[i] = std::frexp(x.v[i], &e);
      exponent->v[i] = static_cast<float>(e);
    }
    return r;
  }
  static Vec round(Vec x) {
    Vec r;
    for (int i = 0; i < size; ++i) r.v[i] = std::nearbyint(x.v[i]);
    return r;
  }
};

}  // namespace APT_SIMD_NS
}  // namespace apt_fast
