"""Build the Cython kernels.

Portable by default: compiled for baseline x86-64 (no -march=native); the GEMM picks its
AVX2+FMA path at run time. The kernels' threads are POSIX threads of their own pool
(nncli/_kernels/pool.c), not OpenMP; without pthreads the kernels run serially (same results).

Fast to rebuild: Cython and the C compiler run on all cores, and a module whose inputs have
not changed (by content, not by date) is neither re-cythonized nor recompiled. pip builds in
the source tree with a fresh build environment each time, so dates alone would redo it all:
`pip install .` followed by `pip install '.[test]'` compiles once.
"""
import hashlib
import json
import os
import sys

import Cython
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Slowest to compile first, so that the parallel build ends sooner (the shared utility
# module, the slowest, is added first in extensions()).
KERNELS = ["engine", "gemm", "activations", "losses", "optim", "dense", "kan", "layers", "dropout", "csvparse"]
DIRECTIVES = {"boundscheck": False, "wraparound": False, "cdivision": True,
              "initializedcheck": False, "nonecheck": False}
SHARED_UTILITY = "nncli._kernels._cyutility"
KEYS = os.path.join("build", "nncli-keys")   # content keys of what was last built


def n_cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def content_key(paths, *extra):
    """sha256 of the files' contents and of `extra` (versions, flags)."""
    h = hashlib.sha256(json.dumps([str(e) for e in extra]).encode())
    for path in sorted(paths):
        with open(path, "rb") as f:
            h.update(path.encode() + b"\0" + f.read())
    return h.hexdigest()


def key_matches(name, key):
    try:
        with open(os.path.join(KEYS, name)) as f:
            return f.read() == key
    except OSError:
        return False


def save_key(name, key):
    os.makedirs(KEYS, exist_ok=True)
    with open(os.path.join(KEYS, name), "w") as f:
        f.write(key)


class BuildExt(build_ext):
    """build_ext on all cores that skips an extension whose inputs are unchanged by content."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = n_cpus()

    def build_extension(self, ext):
        key = content_key([*ext.sources, *ext.depends], ext.extra_compile_args,
                          ext.extra_link_args, ext.define_macros, numpy.__version__,
                          sys.version, self.compiler.compiler_so)
        target = self.get_ext_fullpath(ext.name)
        name = os.path.abspath(target).replace(os.sep, "_")   # one key per built file
        if not self.force and os.path.exists(target) and key_matches(name, key):
            print(f"nncli: {ext.name} is up to date", file=sys.stderr)
            return
        super().build_extension(ext)
        save_key(name, key)


def extensions():
    threads = [] if os.name == "nt" else ["-pthread"]
    # -fno-trapping-math lets gcc turn selects such as leaky_relu's into vector blends (we never
    # rely on floating-point traps); no -ffast-math: it changes results.
    compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-unused-function", *threads]
    if os.environ.get("NNCLI_NATIVE"):  # opt-in, for local builds only: not portable
        compile_args.append("-march=native")
    options = dict(include_dirs=[numpy.get_include(), "nncli/_kernels"],
                   define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                   extra_compile_args=compile_args, extra_link_args=threads)
    exts = []
    for name in KERNELS:
        sources = [f"nncli/_kernels/{name}.pyx"]
        depends = []
        if name == "gemm":
            # The kernels' thread pool lives here too: the other modules reach it through
            # gemm.pxd's run_chunks.
            sources += ["nncli/_kernels/gemm_dispatch.c", "nncli/_kernels/pool.c"]
            # Included by gemm_dispatch.c: a change must rebuild the extension.
            depends = [f"nncli/_kernels/{f}" for f in
                       ("gemm.h", "gemm_common.h", "gemm_kernels.c", "gemm_driver.c", "pool.h")]
        elif name == "activations":
            sources.append("nncli/_kernels/vmath.c")
            depends = ["nncli/_kernels/vmath.h"]
        elif name == "optim":
            depends = ["nncli/_kernels/adam_impl.h"]
        elif name == "dropout":
            depends = ["nncli/_kernels/dropout_impl.h"]
        exts.append(Extension(f"nncli._kernels.{name}", sources, depends=depends, **options))
    # Cython's utility code (memoryviews and the like) once, in a module the others import,
    # instead of a copy in every module: half the C to compile.
    exts.insert(0, Extension(SHARED_UTILITY, [SHARED_UTILITY.replace(".", "/") + ".c"], **options))
    return cythonize_changed(exts)


def cythonize_changed(exts):
    """Cythonize the extensions, or reuse their C files when no Cython source has changed."""
    cython_inputs = [os.path.join("nncli/_kernels", f) for f in os.listdir("nncli/_kernels")
                     if f.endswith((".pyx", ".pxd"))]
    # Any .pxd can be cimported by any module: one key over all Cython sources.
    key = content_key(cython_inputs, Cython.__version__, numpy.__version__, DIRECTIVES)
    c_files = [ext.sources[0].replace(".pyx", ".c") for ext in exts]
    if key_matches("cython", key) and all(os.path.exists(c) for c in c_files):
        for ext, c_file in zip(exts, c_files):
            ext.sources[0] = c_file
        return exts
    exts = cythonize(exts, language_level=3, compiler_directives=DIRECTIVES, nthreads=n_cpus(),
                     force=True, shared_utility_qualified_name=SHARED_UTILITY)
    save_key("cython", key)
    return exts


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
