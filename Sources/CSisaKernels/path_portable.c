// The portable path: plain C, no intrinsics, for any CPU (arm64 included).
// Fused multiply-adds go through fmaf, correctly rounded everywhere (one
// instruction where the CPU has FMA, a library routine where it has not).
#include <math.h>
#include "internal.h"
#include "vecmath.h"

#define MR 4
#define NR 16

static void micro_portable(long kc, const float *a, long rs, long cs, const float *b, float *c, long ldc, int load_c,
                           const float *bias) {
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = load_c ? c[i * ldc + j] : bias ? bias[j] : 0.0f;
    for (long k = 0; k < kc; k++, b += NR)
        for (int i = 0; i < MR; i++) {
            const float ai = a[i * rs + k * cs];
            for (int j = 0; j < NR; j++) acc[i][j] = fmaf(ai, b[j], acc[i][j]);
        }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i * ldc + j] = acc[i][j];
}

static void micro_rows_portable(long kc, const float *a, long lda, const float *b, float *c, long ldc, int load_c,
                                const float *bias) {
    micro_portable(kc, a, lda, 1, b, c, ldc, load_c, bias);
}

static void micro_cols_portable(long kc, const float *a, long lda, const float *b, float *c, long ldc, int load_c,
                                const float *bias) {
    micro_portable(kc, a, 1, lda, b, c, ldc, load_c, bias);
}

static void gemv_portable(float *y, const float *x, const float *w, long K, long N, long ldw, int accumulate) {
    if (!accumulate)
        for (long j = 0; j < N; j++) y[j] = 0;
    for (long k = 0; k < K; k++) {
        const float xk = x[k];
        const float *r = w + k * ldw;
        for (long j = 0; j < N; j++) y[j] = fmaf(xk, r[j], y[j]);
    }
}

/// 12 independent scalar FMA chains per iteration.
static float peak_portable(long iterations) {
    float a[12] = {0};
    for (long i = 0; i < iterations; i++)
        for (int j = 0; j < 12; j++) a[j] = fmaf(a[j], 0.999999f, 1e-7f);
    float s = 0;
    for (int j = 0; j < 12; j++) s += a[j];
    return s;
}

#define GEMM(name) name##_portable
#define MICRO_ROWS micro_rows_portable
#define MICRO_COLS micro_cols_portable
#include "gemm.inc"

#define OPS(name) name##_portable
#define PATH_TABLE sisa_table_portable
#define PATH_NAME "portable"
#define PATH_ENUM SISA_PATH_PORTABLE
#define PATH_MR MR
#define PATH_NR NR
#define PATH_PEAK peak_portable
#define PATH_GEMV gemv_portable
#include "ops.inc"
