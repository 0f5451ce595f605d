/* Instantiates the one GEMM source for both dtypes (C has no templates). */
#include "gemm.h"

#define NN_T float
#define NN_SUFFIX f32
#define NN_IS_F32 1
#include "gemm_impl.c"
#undef NN_T
#undef NN_SUFFIX
#undef NN_IS_F32

#define NN_T double
#define NN_SUFFIX f64
#define NN_IS_F32 0
#include "gemm_impl.c"
#undef NN_T
#undef NN_SUFFIX
#undef NN_IS_F32
