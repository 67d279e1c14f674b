// Debian installs OpenBLAS's cblas.h through the alternatives system at
// /usr/include/x86_64-linux-gnu/cblas.h; openblas_set_num_threads is declared there.
#include <cblas.h>
