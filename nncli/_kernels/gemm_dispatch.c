/* Our GEMM, instantiated for both dtypes from one template (C has no templates):
 *   gemm_common.h   type-independent: macros, tunables, ISA choice, packing workspace
 *   gemm_kernels.c  per dtype: register-tile parameters, micro-kernels, dot path
 *   gemm_driver.c   per dtype: tiny path, packing, blocked loops, thread split, entry point
 * The contract is in gemm.h. */
#include "gemm.h"
#include "gemm_common.h"

#define NN_T float
#define NN_SUFFIX f32
#define NN_IS_F32 1
#include "gemm_kernels.c"
#include "gemm_driver.c"
#undef NN_T
#undef NN_SUFFIX
#undef NN_IS_F32

#define NN_T double
#define NN_SUFFIX f64
#define NN_IS_F32 0
#include "gemm_kernels.c"
#include "gemm_driver.c"
#undef NN_T
#undef NN_SUFFIX
#undef NN_IS_F32
