# cython: language_level=3, boundscheck=False, wraparound=False
"""Checksums of device ranges, GIL released, aligned reads, no per-byte Python work.

scan_range: one digest per segment (XXH3-64 or CRC-32C), comparable across nodes: the same bytes
give the same value whatever the device, so a nexus verify compares lists returned by each child's
own node. crc32c_range: one running CRC-32C over a range (WipeReplica's CHECKSUM method)."""

from libc.errno cimport errno, EINTR
from libc.stdint cimport uint32_t, uint64_t
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

cdef extern from "crc32c.h" nogil:
    void mayastor_crc32c_init()
    uint32_t mayastor_crc32c_update(uint32_t crc, const void *data, size_t n)
    int mayastor_crc32c_uses_hw()
    void mayastor_crc32c_force_sw(int sw)

mayastor_crc32c_init()

cdef uint32_t C_INITIAL = 0xFFFFFFFFU  # start value; the final CRC is the running value XOR this
CRC32C_INITIAL = C_INITIAL
CRC32C_XOR = C_INITIAL
ALGORITHMS = ("xxh3", "crc32c")

cdef enum Algo:
    XXH3 = 0
    CRC32C = 1


cdef inline void _store_le(unsigned char *p, uint64_t v) noexcept nogil:
    cdef int k
    for k in range(8):
        p[k] = (v >> (8 * k)) & 0xFF


cdef int _algo(str name) except -1:
    if name == "xxh3":
        return XXH3
    if name == "crc32c":
        return CRC32C
    raise ValueError(f"unknown checksum algorithm {name!r} (known: {', '.join(ALGORITHMS)})")


cdef ssize_t _read_some(int fd, char *data, size_t n, long long pos, int *err) noexcept nogil:
    """pread retried on EINTR; <0 with *err set on error, 0 at the end of the device."""
    cdef ssize_t r
    while True:
        r = pread(fd, data, n, pos)
        if r < 0 and errno == EINTR:
            continue
        if r < 0:
            err[0] = errno
        return r


def scan_range(int fd, long long offset, long long length, long long segment, AlignedBuffer buf,
               str algorithm="xxh3"):
    """The digest of each ``segment`` bytes of ``fd`` in [offset, offset+length) (the last may be
    shorter): XXH3-64, or the finalized CRC-32C of the segment. Returns them as little-endian u64s
    packed in bytes, one per segment."""
    if segment <= 0 or length < 0 or offset < 0:
        raise ValueError("segment must be positive, offset and length not negative")
    cdef int algo = _algo(algorithm)
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
    cdef uint32_t crc = 0
    try:
        with nogil:
            for i in range(nseg):
                pos = offset + i * segment
                seg_end = pos + segment if pos + segment < end else end
                XXH3_64bits_reset(st)
                crc = C_INITIAL
                while pos < seg_end:
                    n = buf.size if seg_end - pos > <long long>buf.size else <size_t>(seg_end - pos)
                    r = _read_some(fd, buf.data, n, pos, &err)
                    if r <= 0:
                        break
                    if algo == XXH3:
                        XXH3_64bits_update(st, buf.data, r)
                    else:
                        crc = mayastor_crc32c_update(crc, buf.data, r)
                    pos += r
                if pos < seg_end:
                    break
                _store_le(digests + 8 * i, XXH3_64bits_digest(st) if algo == XXH3 else crc ^ C_INITIAL)
    finally:
        XXH3_freeState(st)
    if pos < seg_end:
        if err:
            raise OSError(err, f"read at byte {pos}")
        raise OSError(5, f"device ends at byte {pos}, before {end}")
    return out


def crc32c_range(int fd, long long offset, long long length, AlignedBuffer buf, uint32_t crc=0xFFFFFFFFU):
    """Continue the running CRC-32C ``crc`` over [offset, offset+length) of ``fd``; returns the
    running (not inverted) value."""
    if length < 0 or offset < 0:
        raise ValueError("offset and length must not be negative")
    cdef long long pos = offset, end = offset + length
    cdef size_t n
    cdef ssize_t r = 0
    cdef int err = 0
    with nogil:
        while pos < end:
            n = buf.size if end - pos > <long long>buf.size else <size_t>(end - pos)
            r = _read_some(fd, buf.data, n, pos, &err)
            if r <= 0:
                break
            crc = mayastor_crc32c_update(crc, buf.data, r)
            pos += r
    if pos < end:
        if err:
            raise OSError(err, f"read at byte {pos}")
        raise OSError(5, f"device ends at byte {pos}, before {end}")
    return crc


def crc32c(const unsigned char[:] data, uint32_t crc=0xFFFFFFFFU):
    """Running CRC-32C of a bytes-like object (not inverted; XOR with CRC32C_XOR to finish)."""
    with nogil:
        crc = mayastor_crc32c_update(crc, &data[0] if data.shape[0] else NULL, data.shape[0])
    return crc


def crc32c_hardware(bint use=True):
    """Use (or stop using) the CPU's CRC-32C instruction; returns whether it is in use."""
    mayastor_crc32c_force_sw(0 if use else 1)
    return bool(mayastor_crc32c_uses_hw())


def digest_buffer(AlignedBuffer buf, size_t n, str algorithm="xxh3"):
    """The digest of the first ``n`` bytes of ``buf`` (in-memory speed for the benchmark)."""
    if n > buf.size:
        raise ValueError("n exceeds the buffer")
    cdef int algo = _algo(algorithm)
    cdef uint64_t d
    with nogil:
        if algo == XXH3:
            d = XXH3_64bits(buf.data, n)
        else:
            d = mayastor_crc32c_update(C_INITIAL, buf.data, n) ^ C_INITIAL
    return d


def digest_bytes(const unsigned char[:] data, str algorithm="xxh3"):
    """The digest of a bytes-like object (tests compare against this)."""
    cdef int algo = _algo(algorithm)
    cdef uint64_t d
    with nogil:
        if algo == XXH3:
            d = XXH3_64bits(&data[0] if data.shape[0] else NULL, data.shape[0])
        else:
            d = mayastor_crc32c_update(C_INITIAL, &data[0] if data.shape[0] else NULL,
                                       data.shape[0]) ^ C_INITIAL
    return d
