/* Vectorised transcendentals for the activations (float32 and float64, AVX2+FMA chosen at run
 * time).
 *
 * Each function works on arrays and returns 1 when it ran the vector code, 0 when the caller
 * must use its scalar libm loop (no AVX2+FMA, NNCLI_GEMM_ISA=generic, or an activation code
 * without a vector version). Error bounds against correctly rounded results are in vmath.c and
 * tested in tests/test_vmath.py over the whole float32 range (±0, subnormals, huge values,
 * NaN, ±inf). */
#ifndef NNCLI_VMATH_H
#define NNCLI_VMATH_H

/* Elementary functions: y[i] = fn(x[i]) for i < n (y may be x). */
enum { NN_VM_EXP = 0, NN_VM_EXPM1, NN_VM_TANH, NN_VM_SIGMOID, NN_VM_LOG1P, NN_VM_ERF,
       NN_VM_SIN, NN_VM_COS, NN_VM_COUNT };
int nn_vm_f32(int fn, float *y, const float *x, long n);

/* Activations by ActivationCode (activations.pxd): h = a(f); d ← d·a′(f) for the codes whose
   derivative needs a transcendental of f (gelu, softplus, sin). */
int nn_vact_fwd_f32(int code, float *h, const float *f, long n);
int nn_vact_bwd_f32(int code, float *d, const float *f, long n);
/* float64: the same on 4 lanes; erf (gelu) is libm per lane inside the vector code. */
int nn_vm_f64(int fn, double *y, const double *x, long n);   /* 0 for NN_VM_ERF */
int nn_vact_fwd_f64(int code, double *h, const double *f, long n);
int nn_vact_bwd_f64(int code, double *d, const double *f, long n);

/* 1 when the vector code runs on this CPU. */
int nn_vm_enabled(void);

#endif
