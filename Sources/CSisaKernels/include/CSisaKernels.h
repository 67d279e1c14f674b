// The engine's numerical kernels: matrix products, row reductions and
// element-wise maps, each compiled for three instruction sets (AVX-512,
// AVX2+FMA, and portable C with no intrinsics) and chosen at run time.
//
// The numerics contract (what keeps every path's bits identical) is written
// once, in Sources/SisaEngine/Kernels/Numerics.swift. In short: a matrix
// product accumulates each output element's k terms with fused multiply-adds
// in the order k = 0, 1, 2, ...; every reduction runs over 16 logical lanes
// folded in a fixed pairwise tree; no other operation is fused; exp and log
// are this library's own; nothing depends on the vector width or blocking.
//
// Every function is single-threaded and unchecked: the Swift wrappers
// (Kernels.swift) check extents once per call and split work over threads.
#ifndef CSISAKERNELS_H
#define CSISAKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SISA_PATH_PORTABLE = 0,
    SISA_PATH_AVX2 = 1,
    SISA_PATH_AVX512 = 2,
} SisaKernelPath;

typedef struct {
    float learning_rate, beta1, beta2, epsilon, weight_decay;
    float grad_scale;      // global-norm clipping factor applied to every gradient
    float bias_correction1, bias_correction2;  // 1 / (1 - beta^t)
} SisaAdamWArgs;

// How a matrix product is cut for the caches: a speed choice only, every
// blocking gives the same bits (each element's chain is the same).
typedef struct {
    long kc;          // k-block (0: the default, 256)
    long nc;          // column block, a multiple of gemm_nr (0: the default, 512)
    long a_in_place;  // the largest lda (floats) of a transposed A read in place rather than
                      // copied tile by tile (negative: the default, 512; 0: always copied)
} SisaBlocking;

typedef struct SisaKernelTable {
    const char *name;
    SisaKernelPath path;
    int gemm_mr, gemm_nr;  // register tile of the matrix micro-kernel

    // The matrix product of sisa_gemm (below) on this path.
    void (*gemm)(int trans_a, int trans_b, long M, long N, long K, const float *A, long lda,
                 const float *B, long ldb, float *C, long ldc, int accumulate, const float *bias);

    // The same product with the given blocking: a speed choice, never a change of bits.
    void (*gemm_blocked)(int trans_a, int trans_b, long M, long N, long K, const float *A, long lda,
                         const float *B, long ldb, float *C, long ldc, int accumulate, const float *bias,
                         SisaBlocking blocking);
    // gemm_blocked with B not transposed and C's chains from 0, and b_sums[N] = the sums of
    // B's columns over its K rows (rows in order from +0: column_sums' bits), taken while B
    // is packed: a weight gradient and its bias gradient reading the output gradient once.
    // M > 0 (with no rows, nothing is packed: sum B with column_sums).
    void (*gemm_summing_b)(int trans_a, long M, long N, long K, const float *A, long lda, const float *B,
                           long ldb, float *C, long ldc, float *b_sums, SisaBlocking blocking);
    // op(B) [K, N] (B stored [N, K] when trans_b) as whole-K panels of gemm_nr columns,
    // dst[p][k][0..gemm_nr), zero-padded: ceil(N / gemm_nr) * gemm_nr * K floats.
    void (*pack_panels)(float *dst, const float *B, long ldb, int trans_b, long K, long N);
    // gemm_blocked with op(B) read from pack_panels' layout, `panels` pointing at the
    // product's first column (a multiple of gemm_nr) and first k (row pk of the packed
    // matrix: panels + pk * gemm_nr) of a matrix packed with panel_k >= pk + K rows: the
    // same chains, so the same bits, without packing B per call.
    void (*gemm_panels)(int trans_a, long M, long N, long K, const float *A, long lda, const float *panels,
                        long panel_k, float *C, long ldc, int accumulate, const float *bias, SisaBlocking blocking);
    // y[N] = x[K] . P, P in pack_panels' layout from y's first column: the chains of one
    // row of gemm_panels (from y when accumulate), for decoding one token.
    void (*gemv_panels)(float *y, const float *x, const float *panels, long K, long N, int accumulate);
    // Throughput probe: `iterations` rounds of 12 independent vector fused multiply-add
    // chains (the machine's peak, for reports); returns a value that depends on every chain.
    float (*fma_peak)(long iterations);

    // y[N] = x[K] . W[K, N] (row stride ldw), chained from y when accumulate.
    void (*gemv)(float *y, const float *x, const float *w, long K, long N, long ldw, int accumulate);

    // LayerNorm over `rows` rows of C values: out = (x - mean) * rstd * w + b.
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *x,
                              const float *w, const float *b, long rows, long C, float eps);
    // dx += input gradient; dw += sum over rows of dout * xhat; db += sum of dout
    // (rows in order, element-wise).
    void (*layernorm_backward)(float *dx, float *dw, float *db, const float *dout, const float *x,
                               const float *mean, const float *rstd, const float *w, long rows, long C);
    // row[0..valid) = softmax(scale * row[0..valid)); row[valid..width) = 0.
    void (*softmax_causal)(float *row, long valid, long width, float scale);
    // d[0..n) = scale * p * (d - <p, d>); d[n..width) = 0.
    void (*softmax_causal_backward)(float *d, const float *p, long n, long width, float scale);
    // Per row r: losses[r] = -log softmax(logits[r])[targets[r]] (0 if the target is < 0);
    // with_grad: logits[r] becomes (softmax - onehot) * grad_scale * (weights ? weights[r] : 1).
    void (*cross_entropy)(float *logits, float *losses, const int32_t *targets, const float *weights,
                          long rows, long V, float grad_scale, int with_grad);
    // GPT-2's tanh GELU, as x * sigmoid(2u).
    void (*gelu_forward)(float *out, const float *x, long n);
    void (*gelu_backward)(float *dx, const float *dout, const float *x, long n);  // dx may alias dout
    void (*adamw)(float *p, const float *g, float *m, float *v, long n, const SisaAdamWArgs *args, int decays);
    // y[N] = W[N, K] . x[K] (W row-major, row stride ldw): each y[j] one fused multiply-add
    // chain over k = 0..K-1 (from y[j] when accumulate), the bits of a B-transposed gemm.
    void (*gemv_rows)(float *y, const float *w, const float *x, long N, long K, long ldw, int accumulate);
    // RMSNorm over `rows` rows of C values: rstd = 1 / sqrt(sum(x^2) / C + eps); out = w * (x * rstd).
    void (*rmsnorm_forward)(float *out, float *rstd, const float *x, const float *w, long rows, long C, float eps);
    // dx += input gradient; dw += sum over rows of dout * (x * rstd) (rows in order; dw may be NULL).
    void (*rmsnorm_backward)(float *dx, float *dw, const float *dout, const float *x, const float *rstd,
                             const float *w, long rows, long C);
    // SwiGLU over `rows` rows: gu holds [gate F | up F] per row (row stride 2F);
    // out[F] = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
    void (*swiglu_forward)(float *out, const float *gu, long rows, long F);
    // dgu [rows, 2F] (overwritten) from dout [rows, F]: d up = dout * silu(g),
    // d gate = (dout * up) * (s * (1 + g * (1 - s))), s = 1 / (1 + exp(-g)).
    void (*swiglu_backward)(float *dgu, const float *dout, const float *gu, long rows, long F);
    // Rotary embedding of one position, in place over `heads` heads of hd values (hd even),
    // pairs (i, i + hd/2): a' = a*cos[i] - b*sin[i], b' = b*cos[i] + a*sin[i]. cos, sin [hd/2].
    void (*rope_forward)(float *x, long heads, long hd, const float *cos, const float *sin);
    // Its transpose (the gradient): a' = a*cos[i] + b*sin[i], b' = b*cos[i] - a*sin[i].
    void (*rope_backward)(float *x, long heads, long hd, const float *cos, const float *sin);
    // Sum of squares (16 float lanes, fixed fold), returned as double.
    double (*sum_squares)(const float *x, long n);
    // <a, b> over n elements (16 lanes, fixed fold).
    float (*dot)(const float *a, const float *b, long n);
    // y[c] = sum over r of x[r * ld + c], c < cols: each column one chain from 0,
    // rows added in order (a bias gradient; the bits of adding row after row).
    void (*column_sums)(float *y, const float *x, long rows, long cols, long ld);
    // dst[r][0..cols) = src[r][0..cols) (row strides ldd, lds) with non-temporal stores where
    // dst is aligned, then a store fence: a block computed in cache written to a matrix
    // read again much later, without reading its lines for ownership first.
    void (*copy_rows_streaming)(float *dst, long ldd, const float *src, long lds, long rows, long cols);
} SisaKernelTable;

// The table of a path, or NULL when this CPU (or build) cannot run it.
const SisaKernelTable *sisa_kernel_table(SisaKernelPath path);
// The path's tables by register tile: variant 0 is sisa_kernel_table's; 1 is
// AVX-512's 6 x 64 tile. NULL past the last. Every tile gives the same bits.
const SisaKernelTable *sisa_kernel_table_tile(SisaKernelPath path, int variant);

// C[M, N] = init + op(A)[M, K] . op(B)[K, N], row-major, with op = transpose
// when trans_* is set (A stored [K, M], B stored [N, K]). Each element is one
// fused multiply-add chain over k = 0..K-1 starting from init: C itself when
// accumulate, else bias[j] when bias is not NULL, else 0.
void sisa_gemm(const SisaKernelTable *t, int trans_a, int trans_b, long M, long N, long K,
               const float *A, long lda, const float *B, long ldb, float *C, long ldc, int accumulate,
               const float *bias);

// A per-thread, 64-byte aligned buffer of at least `floats` floats for operands a
// caller packs with pack_panels and reads over several products (attention's keys
// and values per head); valid until the next call on the same thread. Separate from
// the buffer the products pack into.
float *sisa_panel_scratch(size_t floats);

// CPUID's vendor (1 AMD, 2 Intel, 0 other), family and model (with their
// extended fields), all 0 off x86: what the product planner's tables key on.
void sisa_cpu_identity(uint32_t *vendor, uint32_t *family, uint32_t *model);

// The project's own exp and log (no libm), scalar; the vector paths use the
// same formulas and give the same bits.
float sisa_expf(float x);
float sisa_logf(float x);

#ifdef __cplusplus
}
#endif
#endif
