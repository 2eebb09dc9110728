# cython: language_level=3, boundscheck=False, wraparound=False
"""Per-segment checksums of a device range: XXH3-64 (libxxhash), aligned reads, GIL released.

Digests are comparable across nodes: the same bytes give the same 64-bit value whatever the
device, so a nexus verify compares lists returned by each child's own node."""

from libc.errno cimport errno, EINTR
from libc.stdint cimport uint64_t
from posix.unistd cimport pread
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from mayastor._native._buffer cimport AlignedBuffer

cdef extern from "xxhash.h" nogil:
    ctypedef struct XXH3_state_t:
        pass
    ctypedef unsigned long long XXH64_hash_t
    XXH64_hash_t XXH3_64bits(const void *data, size_t length)
    XXH3_state_t *XXH3_createState()
    int XXH3_freeState(XXH3_state_t *state)
    int XXH3_64bits_reset(XXH3_state_t *state)
    int XXH3_64bits_update(XXH3_state_t *state, const void *data, size_t length)
    XXH64_hash_t XXH3_64bits_digest(const XXH3_state_t *state)


cdef inline void _store_le(unsigned char *p, uint64_t v) noexcept nogil:
    cdef int k
    for k in range(8):
        p[k] = (v >> (8 * k)) & 0xFF


def scan_range(int fd, long long offset, long long length, long long segment, AlignedBuffer buf):
    """XXH3-64 of each ``segment`` bytes of ``fd`` in [offset, offset+length) (the last may be
    shorter). Returns the digests as little-endian u64s packed in bytes, one per segment."""
    if segment <= 0 or length < 0 or offset < 0:
        raise ValueError("segment must be positive, offset and length not negative")
    cdef long long nseg = (length + segment - 1) // segment
    out = PyBytes_FromStringAndSize(NULL, nseg * 8)
    cdef unsigned char *digests = <unsigned char *>PyBytes_AS_STRING(out)
    cdef XXH3_state_t *st = XXH3_createState()
    if st == NULL:
        raise MemoryError()
    cdef long long i, pos = 0, seg_end = 0, end = offset + length
    cdef size_t n
    cdef ssize_t r = 0
    cdef int err = 0
    cdef long long failed_at = 0
    try:
        with nogil:
            for i in range(nseg):
                pos = offset + i * segment
                seg_end = pos + segment if pos + segment < end else end
                XXH3_64bits_reset(st)
                while pos < seg_end:
                    n = buf.size if seg_end - pos > <long long>buf.size else <size_t>(seg_end - pos)
                    r = pread(fd, buf.data, n, pos)
                    if r < 0 and errno == EINTR:
                        continue
                    if r <= 0:
                        err = errno if r < 0 else 0
                        failed_at = pos
                        break
                    XXH3_64bits_update(st, buf.data, r)
                    pos += r
                if pos < seg_end:
                    break
                _store_le(digests + 8 * i, XXH3_64bits_digest(st))
    finally:
        XXH3_freeState(st)
    if pos < seg_end:
        if err:
            raise OSError(err, f"read at byte {failed_at}")
        raise OSError(5, f"device ends at byte {failed_at}, before {end}")
    return out


def digest_buffer(AlignedBuffer buf, size_t n):
    """XXH3-64 of the first ``n`` bytes of ``buf`` (in-memory speed for the benchmark)."""
    if n > buf.size:
        raise ValueError("n exceeds the buffer")
    cdef uint64_t d
    with nogil:
        d = XXH3_64bits(buf.data, n)
    return d


def digest_bytes(const unsigned char[:] data):
    """XXH3-64 of a bytes-like object (tests compare against this)."""
    cdef uint64_t d
    with nogil:
        d = XXH3_64bits(&data[0] if data.shape[0] else NULL, data.shape[0])
    return d
