// Internal: the 16-lane vector type and the math every path shares.
//
// Included by each path's source file after its target pragma, so the same
// formulas compile to AVX-512, AVX2 or baseline code. Only element-wise IEEE
// operations (+, -, *, /, sqrt, comparisons, bit moves) appear here, never a
// fused multiply-add and never a library call: each lane's result is then
// fixed by the formula alone, whatever instructions carry it out.
#ifndef SISA_VECMATH_H
#define SISA_VECMATH_H

#if !defined(__clang__)
#error "CSisaKernels relies on clang's vector extensions and fp pragmas"
#endif

#include <stdint.h>

// No a * b + c may become a fused multiply-add behind our back: that would
// change bits on targets that have FMA. Fused operations are written out.
#pragma clang fp contract(off)
#pragma clang fp reassociate(off)
// -ffast-math (or -Ofast) lets clang ignore the pragmas above and reorder the
// fixed reduction trees: refuse to build rather than give other bits.
#if defined(__FAST_MATH__)
#error "CSisaKernels must not be built with -ffast-math: it would change the numerics"
#endif

// The helpers below take and return 16-lane vectors by value. They are
// static and always inlined, so the ABI note clang attaches to such
// signatures (on x86 without AVX-512) concerns no real call.
#pragma clang diagnostic ignored "-Wpsabi"
#define SISA_INLINE static inline __attribute__((always_inline))

typedef float v16 __attribute__((ext_vector_type(16)));
typedef float v8 __attribute__((ext_vector_type(8)));
typedef float v4 __attribute__((ext_vector_type(4)));
typedef float v2 __attribute__((ext_vector_type(2)));
typedef int32_t i16 __attribute__((ext_vector_type(16)));

#define SISA_LANES 16

SISA_INLINE v16 vload(const float *p) {
    v16 v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

SISA_INLINE void vstore(float *p, v16 v) { __builtin_memcpy(p, &v, sizeof v); }

/// The first n (< 16) values of p; the other lanes hold `pad`.
SISA_INLINE v16 vload_tail(const float *p, long n, float pad) {
    float tmp[SISA_LANES];
    for (long i = 0; i < SISA_LANES; i++) tmp[i] = i < n ? p[i] : pad;
    return vload(tmp);
}

SISA_INLINE void vstore_tail(float *p, v16 v, long n) {
    float tmp[SISA_LANES];
    vstore(tmp, v);
    for (long i = 0; i < n; i++) p[i] = tmp[i];
}

/// v with lanes n..15 set to zero (the padding of a partial chunk, before a sum).
SISA_INLINE v16 vzero_from(v16 v, long n) {
    float tmp[SISA_LANES];
    vstore(tmp, v);
    for (long i = n; i < SISA_LANES; i++) tmp[i] = 0;
    return vload(tmp);
}

SISA_INLINE v16 vselect(i16 mask, v16 a, v16 b) {
    return __builtin_bit_cast(v16, (__builtin_bit_cast(i16, a) & mask) | (__builtin_bit_cast(i16, b) & ~mask));
}

SISA_INLINE v16 vmax(v16 a, v16 b) { return vselect(a > b, a, b); }
SISA_INLINE v16 vmin(v16 a, v16 b) { return vselect(a < b, a, b); }

/// The reduction tree of every sum: lane l + lane l+8, then +4, +2, +1.
SISA_INLINE float fold_add(v16 a) {
    v8 h = a.lo + a.hi;
    v4 q = h.lo + h.hi;
    v2 d = q.lo + q.hi;
    return d.x + d.y;
}

SISA_INLINE float fold_max(v16 a) {
    v8 h = a.lo, g = a.hi;
    for (int i = 0; i < 8; i++) h[i] = h[i] > g[i] ? h[i] : g[i];
    float m = h[0];
    // Max is exact, so its order only matters for NaN and signed zeros; fixed anyway.
    for (int i = 1; i < 8; i++) m = h[i] > m ? h[i] : m;
    return m;
}

/// e^x: Cody-Waite reduction x = n ln2 + r, then Cephes' degree-6
/// polynomial for e^r on [-ln2/2, ln2/2] (about 2 ulp); inputs clamped to
/// [-87, 88] so 2^n stays a normal number.
SISA_INLINE v16 vexp(v16 x) {
    x = vmin(vmax(x, (v16)(-87.0f)), (v16)(88.0f));
    // Round x log2(e) to the nearest integer: adding 1.5 * 2^23 leaves no fraction bits.
    const v16 magic = (v16)(12582912.0f);
    v16 n = (x * 1.44269504088896341f + magic) - magic;
    v16 r = x - n * 0.693359375f;       // exact: n * 0.693359375 has at most 16 significant bits
    r = r + n * 2.12194440e-4f;
    v16 p = (v16)(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    v16 y = (p * (r * r) + r) + 1.0f;
    i16 bits = (__builtin_convertvector(n, i16) + 127) << 23;
    return y * __builtin_bit_cast(v16, bits);
}

/// log(x) for positive normal x: x = 2^e m with m in [sqrt(1/2), sqrt(2)),
/// then Cephes' logf polynomial in m - 1 (about 1 ulp). The callers pass
/// sums of exponentials, at least 1; other inputs are handled by sisa_logf.
SISA_INLINE v16 vlog(v16 x) {
    i16 bits = __builtin_bit_cast(i16, x);
    i16 e = ((bits >> 23) & 0xff) - 126;
    v16 m = __builtin_bit_cast(v16, (bits & 0x007fffff) | 0x3f000000);  // in [0.5, 1)
    i16 small = m < 0.707106781186547524f;
    e = e + small;                       // small lanes: e - 1 (true is -1)
    m = vselect(small, m + m, m) - 1.0f;
    v16 ef = __builtin_convertvector(e, v16);
    v16 z = m * m;
    v16 y = (v16)(7.0376836292e-2f);
    y = y * m + -1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m + -1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m + -1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m + -2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = (y * m) * z;
    y = y + ef * -2.12194440e-4f;
    y = y - z * 0.5f;
    return (m + y) + ef * 0.693359375f;
}

/// Scalar log through the vector formula (lane 0), so it matches vlog.
SISA_INLINE float vlog1(float x) { return vlog((v16)(x))[0]; }

SISA_INLINE float vexp1(float x) { return vexp((v16)(x))[0]; }

#endif
