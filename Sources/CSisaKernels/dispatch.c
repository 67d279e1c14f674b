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

const SisaKernelTable *sisa_kernel_table_tile(SisaKernelPath path, int variant) {
    if (variant == 0) return sisa_kernel_table(path);
#if defined(__x86_64__)
    if (variant == 1 && path == SISA_PATH_AVX512 && sisa_kernel_table(path)) return &sisa_table_avx512_wide;
#endif
    return 0;
}

#if defined(__x86_64__)
#include <cpuid.h>
#endif

void sisa_cpu_identity(uint32_t *vendor, uint32_t *family, uint32_t *model) {
    *vendor = 0; *family = 0; *model = 0;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    if (b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163) *vendor = 1;       // "AuthenticAMD"
    else if (b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e) *vendor = 2;  // "GenuineIntel"
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    const unsigned base = (a >> 8) & 0xf, ext = (a >> 20) & 0xff;
    *family = base == 0xf ? base + ext : base;
    *model = ((a >> 4) & 0xf) | ((base == 0xf || base == 0x6) ? ((a >> 16) & 0xf) << 4 : 0);
#endif
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
