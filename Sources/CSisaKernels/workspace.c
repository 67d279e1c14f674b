// Per-thread scratch buffers, freed when the thread exits: one the matrix
// products pack their operands into, and one for operands a caller packs
// once and reads over several products (sisa_panel_scratch).
#include <pthread.h>
#include <stdlib.h>
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
        w->buffer = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        if (!w->buffer) abort();
        w->capacity = floats;
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
