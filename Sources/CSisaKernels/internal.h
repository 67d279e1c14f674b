// Internal: the per-path tables (path_*.c) and the shared scratch buffer.
#ifndef SISA_KERNELS_INTERNAL_H
#define SISA_KERNELS_INTERNAL_H
#include <stddef.h>
#include "CSisaKernels.h"

extern const SisaKernelTable sisa_table_portable;
#if defined(__x86_64__)
extern const SisaKernelTable sisa_table_avx2;
extern const SisaKernelTable sisa_table_avx512;
extern const SisaKernelTable sisa_table_avx512_wide;
#endif

/// A per-thread, 64-byte aligned buffer of at least `floats` floats (valid
/// until the next call on the same thread).
float *sisa_workspace(size_t floats);

#endif
