# cython: language_level=3
from libc.stdlib cimport free

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)


cdef class AlignedBuffer:
    """``size`` bytes aligned to ``align`` (a power of two, at least the device's logical block size)."""

    def __cinit__(self, size_t size, size_t align=4096):
        cdef void *p = NULL
        if size == 0 or size % align:
            raise ValueError(f"buffer size {size} must be a positive multiple of {align}")
        if posix_memalign(&p, align, size) != 0:
            raise MemoryError(f"cannot allocate {size} aligned bytes")
        self.data = <char *>p
        self.size = size

    def __dealloc__(self):
        free(self.data)

    def __len__(self):
        return self.size
