// Which paths this CPU can run, and the scalar entry points of the math.
#include "internal.h"
#include "vecmath.h"

const SisaKernelTable *sisa_kernel_table(SisaKernelPath path) {
    switch (path) {
    case SISA_PATH_PORTABLE:
        return &sisa_table_portable;
#if defined(__x86_64__)
    case SISA_PATH_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &sisa_table_avx2 : 0;
    case SISA_PATH_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                   ? &sisa_table_avx512 : 0;
#endif
    default:
        return 0;
    }
}

float sisa_expf(float x) {
    if (x != x) return x;
    return vexp1(x);
}

float sisa_logf(float x) {
    if (x != x || x < 0) return __builtin_nanf("");
    if (x == 0) return -__builtin_inff();
    if (x == __builtin_inff()) return x;
    if (x < 1.17549435e-38f) return vlog1(x * 8388608.0f) - 15.9423851528787f;  // subnormal: scale by 2^23
    return vlog1(x);
}
