"""Build the Cython kernels.

Portable by default: compiled for baseline x86-64 (no -march=native); the GEMM picks its
AVX2+FMA path at run time. OpenMP is used when the compiler supports it, else the kernels
run serially (same results for one thread).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

KERNELS = ["gemm", "activations", "losses", "dense", "layers", "optim", "engine", "csvparse"]


def openmp_flags():
    """Return the OpenMP compile/link flag if the C compiler accepts it, else []."""
    if os.environ.get("NNCLI_NO_OPENMP"):
        return []
    cc = os.environ.get("CC", "cc")
    if not shutil.which(cc.split()[0]):
        return []
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(src)
        try:
            ok = subprocess.run([*cc.split(), "-fopenmp", path, "-o", os.path.join(tmp, "probe")],
                                capture_output=True).returncode == 0
        except OSError:
            ok = False
    if not ok:
        print("nncli: compiler has no OpenMP; building single-threaded kernels", file=sys.stderr)
    return ["-fopenmp"] if ok else []


def extensions():
    omp = openmp_flags()
    # -fno-trapping-math lets gcc turn selects such as leaky_relu's into vector blends (we never
    # rely on floating-point traps); no -ffast-math: it changes results.
    compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-unused-function", *omp]
    if os.environ.get("NNCLI_NATIVE"):  # opt-in, for local builds only: not portable
        compile_args.append("-march=native")
    exts = []
    for name in KERNELS:
        sources = [f"nncli/_kernels/{name}.pyx"]
        depends = []
        if name == "gemm":
            sources.append("nncli/_kernels/gemm_dispatch.c")
            # Included by gemm_dispatch.c: a change must rebuild the extension.
            depends = [f"nncli/_kernels/{f}" for f in
                       ("gemm.h", "gemm_common.h", "gemm_kernels.c", "gemm_driver.c")]
        elif name == "optim":
            depends = ["nncli/_kernels/adam_impl.h"]
        exts.append(Extension(
            f"nncli._kernels.{name}", sources,
            depends=depends, include_dirs=[numpy.get_include(), "nncli/_kernels"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=compile_args, extra_link_args=omp,
        ))
    return cythonize(exts, language_level=3, compiler_directives={
        "boundscheck": False, "wraparound": False, "cdivision": True,
        "initializedcheck": False, "nonecheck": False,
    })


setup(ext_modules=extensions())
