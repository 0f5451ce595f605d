/* One row of a dropout mask in C, so that it can be compiled twice — for baseline x86-64 and
 * for AVX2 — and chosen at run time (gcc's target_clones), as adam_impl.h is: the hash per
 * unit vectorises (8 lanes of 32-bit multiplies with AVX2, emulated on 4 with SSE2), and a
 * mask then costs well under a nanosecond per unit. Both dtypes from one template below. */
#ifndef NNCLI_DROPOUT_IMPL_H
#define NNCLI_DROPOUT_IMPL_H
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define NN_DROPOUT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NN_DROPOUT_CLONES
#endif

/* lowbias32 (C. Wellons, hash-prospector): a bijection of 32-bit words with low bias. */
static inline uint32_t nn_mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* Unit j of the row keyed (lo, hi) is kept when mix32((lo + G·(j+1)) ^ hi) ≥ threshold:
 * within a row the inputs are distinct, so are the draws.
 *   mask[j] = keep or 0;  out[j] = h[j]·mask[j]  (no branch: which units drop is random) */
#define NN_DROPOUT_DEFINE(T, SUFFIX)                                                         \
    NN_DROPOUT_CLONES static void nn_dropout_row_##SUFFIX(T *restrict out, T *restrict mask, \
                                                          const T *restrict h, long n,       \
                                                          uint32_t lo, uint32_t hi,          \
                                                          uint32_t threshold, T keep)        \
    {                                                                                        \
        for (long j = 0; j < n; j++) {                                                       \
            uint32_t u = nn_mix32((lo + 0x9E3779B9U * (uint32_t)(j + 1)) ^ hi);              \
            T m = keep * (T)(u >= threshold);                                                \
            mask[j] = m;                                                                     \
            out[j] = h[j] * m;                                                               \
        }                                                                                    \
    }

NN_DROPOUT_DEFINE(float, f32)
NN_DROPOUT_DEFINE(double, f64)

#endif
