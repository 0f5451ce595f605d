/* Adam's element loop in C, so that it can be compiled twice — for baseline x86-64 and
 * for AVX2 — and chosen at run time (gcc's target_clones). It is the one optimiser update
 * whose cost shows in training (a square root and a division per parameter); Cython
 * cannot attach the target attribute itself. Both dtypes from one template below. */
#ifndef NNCLI_ADAM_IMPL_H
#define NNCLI_ADAM_IMPL_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define NN_ADAM_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NN_ADAM_CLONES
#endif

/* m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  φ ← φ − step·m / (√v·bc2 + ε)
 * with g = grad·scale + wd·φ. 1−β1 and 1−β2 come from the caller, computed in double and
 * rounded once (1 − β in float32 is not 1−β rounded). */
#define NN_ADAM_DEFINE(T, SUFFIX, SQRT)                                                      \
    NN_ADAM_CLONES static void nn_adam_##SUFFIX(T *restrict phi, const T *restrict grad,     \
                                                T *restrict m, T *restrict v, long P,        \
                                                T scale, T wd, T b1, T one_minus_b1, T b2,   \
                                                T one_minus_b2, T step, T bc2, T eps)        \
    {                                                                                        \
        for (long i = 0; i < P; i++) {                                                       \
            T g = grad[i] * scale + wd * phi[i];                                             \
            T mi = b1 * m[i] + one_minus_b1 * g;                                             \
            T vi = b2 * v[i] + one_minus_b2 * g * g;                                         \
            m[i] = mi;                                                                       \
            v[i] = vi;                                                                       \
            phi[i] -= step * mi / (SQRT(vi) * bc2 + eps);                                    \
        }                                                                                    \
    }

#include <math.h>
NN_ADAM_DEFINE(float, f32, sqrtf)
NN_ADAM_DEFINE(double, f64, sqrt)

#endif
