// Per-thread scratch buffers, freed when the thread exits: one the matrix
// products pack their operands into, and one for operands a caller packs
// once and reads over several products (sisa_panel_scratch).
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "internal.h"

typedef struct {
    float *buffer;
    size_t capacity;  // floats
} Workspace;

static pthread_key_t workspace_key, panel_key;
static pthread_once_t workspace_once = PTHREAD_ONCE_INIT;

static void workspace_free(void *p) {
    Workspace *w = p;
    free(w->buffer);
    free(w);
}

static void workspace_init(void) {
    pthread_key_create(&workspace_key, workspace_free);
    pthread_key_create(&panel_key, workspace_free);
}

static float *thread_buffer(pthread_key_t key, size_t floats) {
    Workspace *w = pthread_getspecific(key);
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w) abort();
        pthread_setspecific(key, w);
    }
    if (w->capacity < floats) {
        free(w->buffer);
        // Whole 2 MiB pages, asked for as such: the packed blocks the products
        // stream through then cross no 4 KiB page boundary (one TLB entry).
        const size_t huge = (size_t)2 << 20;
        const size_t bytes = (floats * sizeof(float) + huge - 1) / huge * huge;
        w->buffer = aligned_alloc(huge, bytes);
        if (!w->buffer) abort();
#if defined(__linux__)
        madvise(w->buffer, bytes, MADV_HUGEPAGE);
#endif
        w->capacity = bytes / sizeof(float);
    }
    return w->buffer;
}

float *sisa_workspace(size_t floats) {
    pthread_once(&workspace_once, workspace_init);
    return thread_buffer(workspace_key, floats);
}

float *sisa_panel_scratch(size_t floats) {
    pthread_once(&workspace_once, workspace_init);
    return thread_buffer(panel_key, floats);
}

void sisa_gemm(const SisaKernelTable *t, int trans_a, int trans_b, long M, long N, long K,
               const float *A, long lda, const float *B, long ldb, float *C, long ldc, int accumulate,
               const float *bias) {
    t->gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, bias);
}
