// BLAS (OpenBLAS, through its CBLAS interface) and LAPACK (through LAPACKE) for the reconstruction's dense
// linear algebra: descriptor matching as matrix products, SVDs and eigenvalue problems of the minimal solvers.
#include <cblas.h>
#include <lapacke.h>
