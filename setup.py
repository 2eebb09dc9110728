"""Builds the Cython hot paths (mayastor/_native); everything else is in pyproject.toml."""
from Cython.Build import cythonize
from setuptools import Extension, setup

CFLAGS = ["-O3"]
extensions = [
    Extension("mayastor._native._buffer", ["mayastor/_native/_buffer.pyx"], extra_compile_args=CFLAGS),
    Extension("mayastor._native.copy", ["mayastor/_native/copy.pyx"], extra_compile_args=CFLAGS),
    Extension("mayastor._native.scan", ["mayastor/_native/scan.pyx"], extra_compile_args=CFLAGS,
              libraries=["xxhash"], depends=["mayastor/_native/crc32c.h", "mayastor/_native/readahead.h"]),
]

setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": 3}))
