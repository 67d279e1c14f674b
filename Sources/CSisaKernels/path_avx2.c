// The AVX2+FMA path: a 6 x 16 register tile (12 ymm accumulators); per k,
// two vectors of B and one broadcast of A per row.
#if defined(__x86_64__)
#include <immintrin.h>
#include "internal.h"

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#include "vecmath.h"

#define MR 6
#define NR 16
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

// One micro-kernel body; AT(i), defined by each kernel, is the address of
// A(i, k) for the current k.
#define MICRO_BODY(ADVANCE)                                                                  \
    ROWS(DECL)                                                                                   \
    if (load_c) { ROWS(LOADC) } else if (bias) { ROWS(BIASC) } else { ROWS(ZEROC) }                \
    for (long k = 0; k < kc; k++) {                                                              \
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);                       \
        ROWS(STEP)                                                                               \
        ADVANCE;                                                                                 \
        b += NR;                                                                                 \
    }                                                                                            \
    ROWS(STOREC)
#define DECL(i) __m256 c##i##0, c##i##1;
#define LOADC(i) c##i##0 = _mm256_loadu_ps(c + i * ldc); c##i##1 = _mm256_loadu_ps(c + i * ldc + 8);
#define ZEROC(i) c##i##0 = _mm256_setzero_ps(); c##i##1 = _mm256_setzero_ps();
#define BIASC(i) c##i##0 = _mm256_loadu_ps(bias); c##i##1 = _mm256_loadu_ps(bias + 8);
#define STEP(i) { const __m256 ai = _mm256_broadcast_ss(AT(i));                                  \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1); }
#define STOREC(i) _mm256_storeu_ps(c + i * ldc, c##i##0); _mm256_storeu_ps(c + i * ldc + 8, c##i##1);

static void micro_rows_avx2(long kc, const float *a, long lda, const float *b, float *c, long ldc, int load_c,
                              const float *bias) {
#define AT(i) (a + i * lda)
    MICRO_BODY(a += 1)
#undef AT
}

static void micro_cols_avx2(long kc, const float *a, long lda, const float *b, float *c, long ldc, int load_c,
                              const float *bias) {
#define AT(i) (a + i)
    MICRO_BODY(a += lda)
#undef AT
}

static void gemv_avx2(float *y, const float *x, const float *w, long K, long N, long ldw, int accumulate) {
    long j = 0;
    for (; j + 32 <= N; j += 32) {
        __m256 y0 = accumulate ? _mm256_loadu_ps(y + j) : _mm256_setzero_ps();
        __m256 y1 = accumulate ? _mm256_loadu_ps(y + j + 8) : _mm256_setzero_ps();
        __m256 y2 = accumulate ? _mm256_loadu_ps(y + j + 16) : _mm256_setzero_ps();
        __m256 y3 = accumulate ? _mm256_loadu_ps(y + j + 24) : _mm256_setzero_ps();
        for (long k = 0; k < K; k++) {
            const float *r = w + k * ldw + j;
            const __m256 xk = _mm256_broadcast_ss(x + k);
            y0 = _mm256_fmadd_ps(xk, _mm256_loadu_ps(r), y0);
            y1 = _mm256_fmadd_ps(xk, _mm256_loadu_ps(r + 8), y1);
            y2 = _mm256_fmadd_ps(xk, _mm256_loadu_ps(r + 16), y2);
            y3 = _mm256_fmadd_ps(xk, _mm256_loadu_ps(r + 24), y3);
        }
        _mm256_storeu_ps(y + j, y0); _mm256_storeu_ps(y + j + 8, y1);
        _mm256_storeu_ps(y + j + 16, y2); _mm256_storeu_ps(y + j + 24, y3);
    }
    for (; j + 8 <= N; j += 8) {
        __m256 acc = accumulate ? _mm256_loadu_ps(y + j) : _mm256_setzero_ps();
        for (long k = 0; k < K; k++)
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(x + k), _mm256_loadu_ps(w + k * ldw + j), acc);
        _mm256_storeu_ps(y + j, acc);
    }
    for (; j < N; j++) {
        float acc = accumulate ? y[j] : 0.0f;
        for (long k = 0; k < K; k++) acc = __builtin_fmaf(x[k], w[k * ldw + j], acc);
        y[j] = acc;
    }
}


/// 12 independent FMA chains per iteration (the FMA units' latency x throughput on current x86).
static float peak_avx2(long iterations) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (long i = 0; i < iterations; i++) {
        a0 = _mm256_fmadd_ps(a0, x, y); a1 = _mm256_fmadd_ps(a1, x, y); a2 = _mm256_fmadd_ps(a2, x, y); a3 = _mm256_fmadd_ps(a3, x, y);
        a4 = _mm256_fmadd_ps(a4, x, y); a5 = _mm256_fmadd_ps(a5, x, y); a6 = _mm256_fmadd_ps(a6, x, y); a7 = _mm256_fmadd_ps(a7, x, y);
        a8 = _mm256_fmadd_ps(a8, x, y); a9 = _mm256_fmadd_ps(a9, x, y); a10 = _mm256_fmadd_ps(a10, x, y); a11 = _mm256_fmadd_ps(a11, x, y);
    }
    a0 = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    float out[8];
    __builtin_memcpy(out, &a0, sizeof out);
    return out[0];
}

#define GEMM(name) name##_avx2
#define MICRO_ROWS micro_rows_avx2
#define MICRO_COLS micro_cols_avx2
#include "gemm.inc"

#define OPS(name) name##_avx2
#define PATH_TABLE sisa_table_avx2
#define PATH_NAME "avx2"
#define PATH_ENUM SISA_PATH_AVX2
#define PATH_MR MR
#define PATH_NR NR
#define PATH_PEAK peak_avx2
#define PATH_GEMV gemv_avx2
#include "ops.inc"

#pragma clang attribute pop
#endif
