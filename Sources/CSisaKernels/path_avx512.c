// The AVX-512 path: an 8 x 32 register tile (16 zmm accumulators); per k,
// two vectors of B and one broadcast of A per row. A second table below has
// a 6 x 64 tile for the planner (same chains, so the same bits).
#if defined(__x86_64__)
#include <immintrin.h>
#include "internal.h"

#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#include "vecmath.h"

#define MR 8
#define NR 32
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

// One micro-kernel body; AT(i), defined by each kernel, is the address of
// A(i, k) for the current k.
#define MICRO_BODY(ADVANCE)                                                                  \
    ROWS(DECL)                                                                                   \
    if (load_c) { ROWS(LOADC) } else if (bias) { ROWS(BIASC) } else { ROWS(ZEROC) }                \
    for (long k = 0; k < kc; k++) {                                                              \
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);                      \
        ROWS(STEP)                                                                               \
        ADVANCE;                                                                                 \
        b += NR;                                                                                 \
    }                                                                                            \
    ROWS(STOREC)
#define DECL(i) __m512 c##i##0, c##i##1;
#define LOADC(i) c##i##0 = _mm512_loadu_ps(c + i * ldc); c##i##1 = _mm512_loadu_ps(c + i * ldc + 16);
#define ZEROC(i) c##i##0 = _mm512_setzero_ps(); c##i##1 = _mm512_setzero_ps();
#define BIASC(i) c##i##0 = _mm512_loadu_ps(bias); c##i##1 = _mm512_loadu_ps(bias + 16);
#define STEP(i) { const __m512 ai = _mm512_set1_ps(*AT(i));                                      \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); }
#define STOREC(i) _mm512_storeu_ps(c + i * ldc, c##i##0); _mm512_storeu_ps(c + i * ldc + 16, c##i##1);

static void micro_rows_avx512(long kc, const float *a, long lda, const float *b, float *c, long ldc, int load_c,
                              const float *bias) {
#define AT(i) (a + i * lda)
    MICRO_BODY(a += 1)
#undef AT
}

static void micro_cols_avx512(long kc, const float *a, long lda, const float *b, float *c, long ldc, int load_c,
                              const float *bias) {
#define AT(i) (a + i)
    MICRO_BODY(a += lda)
#undef AT
}

static void gemv_avx512(float *y, const float *x, const float *w, long K, long N, long ldw, int accumulate) {
    long j = 0;
    for (; j + 64 <= N; j += 64) {
        __m512 y0 = accumulate ? _mm512_loadu_ps(y + j) : _mm512_setzero_ps();
        __m512 y1 = accumulate ? _mm512_loadu_ps(y + j + 16) : _mm512_setzero_ps();
        __m512 y2 = accumulate ? _mm512_loadu_ps(y + j + 32) : _mm512_setzero_ps();
        __m512 y3 = accumulate ? _mm512_loadu_ps(y + j + 48) : _mm512_setzero_ps();
        for (long k = 0; k < K; k++) {
            const float *r = w + k * ldw + j;
            const __m512 xk = _mm512_set1_ps(x[k]);
            y0 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(r), y0);
            y1 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(r + 16), y1);
            y2 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(r + 32), y2);
            y3 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(r + 48), y3);
        }
        _mm512_storeu_ps(y + j, y0); _mm512_storeu_ps(y + j + 16, y1);
        _mm512_storeu_ps(y + j + 32, y2); _mm512_storeu_ps(y + j + 48, y3);
    }
    for (; j < N; j += 16) {
        const __mmask16 m = N - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (N - j)) - 1);
        __m512 acc = accumulate ? _mm512_maskz_loadu_ps(m, y + j) : _mm512_setzero_ps();
        for (long k = 0; k < K; k++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(x[k]), _mm512_maskz_loadu_ps(m, w + k * ldw + j), acc);
        _mm512_mask_storeu_ps(y + j, m, acc);
    }
}


/// 12 independent FMA chains per iteration (the FMA units' latency x throughput on current x86).
static float peak_avx512(long iterations) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (long i = 0; i < iterations; i++) {
        a0 = _mm512_fmadd_ps(a0, x, y); a1 = _mm512_fmadd_ps(a1, x, y); a2 = _mm512_fmadd_ps(a2, x, y); a3 = _mm512_fmadd_ps(a3, x, y);
        a4 = _mm512_fmadd_ps(a4, x, y); a5 = _mm512_fmadd_ps(a5, x, y); a6 = _mm512_fmadd_ps(a6, x, y); a7 = _mm512_fmadd_ps(a7, x, y);
        a8 = _mm512_fmadd_ps(a8, x, y); a9 = _mm512_fmadd_ps(a9, x, y); a10 = _mm512_fmadd_ps(a10, x, y); a11 = _mm512_fmadd_ps(a11, x, y);
    }
    a0 = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    float out[16];
    __builtin_memcpy(out, &a0, sizeof out);
    return out[0];
}

#define GEMM(name) name##_avx512
#define MICRO_ROWS micro_rows_avx512
#define MICRO_COLS micro_cols_avx512
#include "gemm.inc"

#define OPS(name) name##_avx512
#define PATH_TABLE sisa_table_avx512
#define PATH_NAME "avx512"
#define PATH_ENUM SISA_PATH_AVX512
#define PATH_MR MR
#define PATH_NR NR
#define PATH_PEAK peak_avx512
#define PATH_GEMV gemv_avx512
#include "ops.inc"

// The wide tile: 6 x 64 (24 zmm accumulators); per k, four vectors of B and
// one broadcast of A per row, so 10 loads feed 24 FMAs (8 x 32: 10 feed 16).
// Intel's AVX-512 server cores retire two full-width FMAs per cycle, and
// there the narrower tile waits on loads: at SmolLM2's shapes on a 2-core Ice
// Lake VM, 6 x 64 ran the product at 130-140 GFLOP/s a core against 75-122
// for 8 x 32 (a standalone loop, several runs). Zen 4 halves each FMA and
// sees no difference. A second table of the same path, for the planner; its
// panels are 64 columns wide, so a product over them runs this tile.
#undef MR
#undef NR
#undef ROWS
#undef MICRO_BODY
#undef DECL
#undef LOADC
#undef ZEROC
#undef BIASC
#undef STEP
#undef STOREC
#define MR 6
#define NR 64
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define MICRO_BODY(ADVANCE)                                                                  \
    ROWS(DECL)                                                                                   \
    if (load_c) { ROWS(LOADC) } else if (bias) { ROWS(BIASC) } else { ROWS(ZEROC) }                \
    for (long k = 0; k < kc; k++) {                                                              \
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);                      \
        const __m512 b2 = _mm512_loadu_ps(b + 32), b3 = _mm512_loadu_ps(b + 48);                 \
        ROWS(STEP)                                                                               \
        ADVANCE;                                                                                 \
        b += NR;                                                                                 \
    }                                                                                            \
    ROWS(STOREC)
#define DECL(i) __m512 c##i##0, c##i##1, c##i##2, c##i##3;
#define LOADC(i) c##i##0 = _mm512_loadu_ps(c + i * ldc); c##i##1 = _mm512_loadu_ps(c + i * ldc + 16);            \
                 c##i##2 = _mm512_loadu_ps(c + i * ldc + 32); c##i##3 = _mm512_loadu_ps(c + i * ldc + 48);
#define ZEROC(i) c##i##0 = _mm512_setzero_ps(); c##i##1 = c##i##0; c##i##2 = c##i##0; c##i##3 = c##i##0;
#define BIASC(i) c##i##0 = _mm512_loadu_ps(bias); c##i##1 = _mm512_loadu_ps(bias + 16);                         \
                 c##i##2 = _mm512_loadu_ps(bias + 32); c##i##3 = _mm512_loadu_ps(bias + 48);
#define STEP(i) { const __m512 ai = _mm512_set1_ps(*AT(i));                                      \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);     \
        c##i##2 = _mm512_fmadd_ps(ai, b2, c##i##2); c##i##3 = _mm512_fmadd_ps(ai, b3, c##i##3); }
#define STOREC(i) _mm512_storeu_ps(c + i * ldc, c##i##0); _mm512_storeu_ps(c + i * ldc + 16, c##i##1);      \
                  _mm512_storeu_ps(c + i * ldc + 32, c##i##2); _mm512_storeu_ps(c + i * ldc + 48, c##i##3);

static void micro_rows_avx512w(long kc, const float *a, long lda, const float *b, float *c, long ldc, int load_c,
                               const float *bias) {
#define AT(i) (a + i * lda)
    MICRO_BODY(a += 1)
#undef AT
}

static void micro_cols_avx512w(long kc, const float *a, long lda, const float *b, float *c, long ldc, int load_c,
                               const float *bias) {
#define AT(i) (a + i)
    MICRO_BODY(a += lda)
#undef AT
}

#undef GEMM
#undef MICRO_ROWS
#undef MICRO_COLS
#define GEMM(name) name##_avx512w
#define MICRO_ROWS micro_rows_avx512w
#define MICRO_COLS micro_cols_avx512w
#include "gemm.inc"

#undef PATH_TABLE
#undef PATH_MR
#undef PATH_NR
#define PATH_TABLE sisa_table_avx512_wide
#define PATH_MR MR
#define PATH_NR NR
#include "table.inc"

#pragma clang attribute pop
#endif
