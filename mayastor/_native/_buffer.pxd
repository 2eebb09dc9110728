# An aligned heap buffer shared by the copier and the scanner (O_DIRECT needs the alignment).
cdef class AlignedBuffer:
    cdef char *data
    cdef size_t size
