# cython: language_level=3, boundscheck=False, wraparound=False
"""Checksums of device ranges, GIL released, aligned reads, no per-byte Python work.

scan_range: one digest per segment (XXH64, XXH3-64 or CRC-32C), comparable across nodes: the same bytes
give the same value whatever the device, so a nexus verify compares lists returned by each child's
own node. crc32c_range: one running CRC-32C over a range (WipeReplica's CHECKSUM method)."""

from libc.errno cimport errno
from libc.stdint cimport uint32_t, uint64_t
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
    ctypedef struct XXH64_state_t:
        pass
    XXH64_hash_t XXH64(const void *data, size_t length, XXH64_hash_t seed)
    XXH64_state_t *XXH64_createState()
    int XXH64_freeState(XXH64_state_t *state)
    int XXH64_reset(XXH64_state_t *state, XXH64_hash_t seed)
    int XXH64_update(XXH64_state_t *state, const void *data, size_t length)
    XXH64_hash_t XXH64_digest(const XXH64_state_t *state)

cdef extern from "crc32c.h" nogil:
    void mayastor_crc32c_init()
    uint32_t mayastor_crc32c_update(uint32_t crc, const void *data, size_t n)
    int mayastor_crc32c_uses_hw()
    void mayastor_crc32c_force_sw(int sw)

mayastor_crc32c_init()

cdef uint32_t C_INITIAL = 0xFFFFFFFFU  # start value; the final CRC is the running value XOR this
CRC32C_INITIAL = C_INITIAL
CRC32C_XOR = C_INITIAL
# xxh64 is the default: scalar 64-bit arithmetic, fast everywhere (7 GB/s a core; still 1.9 GB/s
# under qemu TCG, where XXH3's SIMD and the CRC instruction are emulated at 0.1-0.3 GB/s)
ALGORITHMS = ("xxh64", "xxh3", "crc32c")
DEFAULT = "xxh64"

cdef enum Algo:
    XXH3 = 0
    CRC32C = 1
    XX64 = 2


cdef inline void _store_le(unsigned char *p, uint64_t v) noexcept nogil:
    cdef int k
    for k in range(8):
        p[k] = (v >> (8 * k)) & 0xFF


cdef int _algo(str name) except -1:
    if name == "xxh3":
        return XXH3
    if name == "crc32c":
        return CRC32C
    if name == "xxh64":
        return XX64
    raise ValueError(f"unknown checksum algorithm {name!r} (known: {', '.join(ALGORITHMS)})")


cdef inline uint64_t _final(int algo, XXH3_state_t *st, XXH64_state_t *st64, uint32_t crc) noexcept nogil:
    if algo == XX64:
        return XXH64_digest(st64)
    if algo == XXH3:
        return XXH3_64bits_digest(st)
    return crc ^ C_INITIAL


cdef extern from "readahead.h" nogil:
    ctypedef struct ra_t:
        int err
        long long failed_at
    int ra_start(ra_t *ra, int fd, long long offset, long long length, long long boundary, size_t bufsize,
                 int nbuf)
    int ra_next(ra_t *ra, char **data, size_t *n, long long *pos)
    void ra_release(ra_t *ra)
    void ra_finish(ra_t *ra)

READ_AHEAD = 4  # buffers the reader thread may fill ahead of the digest


cdef void _start(ra_t *ra, int fd, long long offset, long long length, long long boundary, size_t bufsize) except *:
    if ra_start(ra, fd, offset, length, boundary, bufsize, READ_AHEAD) != 0:
        err = errno
        ra_finish(ra)
        raise OSError(err, "cannot start the read-ahead thread")


cdef void _check_complete(ra_t *ra, long long got, long long offset, long long length) except *:
    if got < length:
        if ra.err:
            raise OSError(ra.err, f"read at byte {ra.failed_at}")
        raise OSError(5, f"device ends at byte {offset + got}, before {offset + length}")


def scan_range(int fd, long long offset, long long length, long long segment, AlignedBuffer buf,
               str algorithm=DEFAULT):
    """The digest of each ``segment`` bytes of ``fd`` in [offset, offset+length) (the last may be
    shorter): XXH64 (seed 0), XXH3-64, or the finalized CRC-32C of the segment. Returns them as little-endian u64s
    packed in bytes, one per segment. Reads of ``buf.size`` bytes (whatever the segment size) run
    ahead in a thread of their own; ``buf`` only sets the read size: the reader has its own buffers."""
    if segment <= 0 or length < 0 or offset < 0:
        raise ValueError("segment must be positive, offset and length not negative")
    cdef int algo = _algo(algorithm)
    cdef long long nseg = (length + segment - 1) // segment
    out = PyBytes_FromStringAndSize(NULL, nseg * 8)
    cdef unsigned char *digests = <unsigned char *>PyBytes_AS_STRING(out)
    if nseg == 0:
        return out
    cdef XXH3_state_t *st = XXH3_createState()
    cdef XXH64_state_t *st64 = XXH64_createState()
    if st == NULL or st64 == NULL:
        XXH3_freeState(st)
        XXH64_freeState(st64)
        raise MemoryError()
    cdef ra_t ra
    cdef char *data
    cdef size_t n
    cdef long long pos, cur = 0, idx, got = 0, take
    cdef size_t done
    cdef uint32_t crc = C_INITIAL
    try:
        _start(&ra, fd, offset, length, 0, buf.size)
        try:
            with nogil:
                XXH3_64bits_reset(st)
                XXH64_reset(st64, 0)
                while ra_next(&ra, &data, &n, &pos):
                    done = 0
                    while done < n:  # a read may span segment edges: digest it piece by piece
                        idx = (pos + done - offset) // segment
                        if idx != cur:  # the previous segment is complete: reads are in order
                            _store_le(digests + 8 * cur, _final(algo, st, st64, crc))
                            XXH3_64bits_reset(st)
                            XXH64_reset(st64, 0)
                            crc = C_INITIAL
                            cur = idx
                        take = offset + (idx + 1) * segment - (pos + done)
                        if take > <long long>(n - done):
                            take = n - done
                        if algo == XX64:
                            XXH64_update(st64, data + done, take)
                        elif algo == XXH3:
                            XXH3_64bits_update(st, data + done, take)
                        else:
                            crc = mayastor_crc32c_update(crc, data + done, take)
                        done += take
                    got += n
                    ra_release(&ra)
                if got == length:
                    _store_le(digests + 8 * cur, _final(algo, st, st64, crc))
            _check_complete(&ra, got, offset, length)
        finally:
            ra_finish(&ra)
    finally:
        XXH3_freeState(st)
        XXH64_freeState(st64)
    return out


def crc32c_range(int fd, long long offset, long long length, AlignedBuffer buf, uint32_t crc=0xFFFFFFFFU):
    """Continue the running CRC-32C ``crc`` over [offset, offset+length) of ``fd``; returns the
    running (not inverted) value. Reads run ahead as in scan_range."""
    if length < 0 or offset < 0:
        raise ValueError("offset and length must not be negative")
    if length == 0:
        return crc
    cdef ra_t ra
    cdef char *data
    cdef size_t n
    cdef long long pos, got = 0
    _start(&ra, fd, offset, length, 0, buf.size)
    try:
        with nogil:
            while ra_next(&ra, &data, &n, &pos):
                crc = mayastor_crc32c_update(crc, data, n)
                got += n
                ra_release(&ra)
        _check_complete(&ra, got, offset, length)
    finally:
        ra_finish(&ra)
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


def digest_buffer(AlignedBuffer buf, size_t n, str algorithm=DEFAULT):
    """The digest of the first ``n`` bytes of ``buf`` (in-memory speed for the benchmark)."""
    if n > buf.size:
        raise ValueError("n exceeds the buffer")
    cdef int algo = _algo(algorithm)
    cdef uint64_t d
    with nogil:
        if algo == XX64:
            d = XXH64(buf.data, n, 0)
        elif algo == XXH3:
            d = XXH3_64bits(buf.data, n)
        else:
            d = mayastor_crc32c_update(C_INITIAL, buf.data, n) ^ C_INITIAL
    return d


def digest_bytes(const unsigned char[:] data, str algorithm=DEFAULT):
    """The digest of a bytes-like object (tests compare against this)."""
    cdef int algo = _algo(algorithm)
    cdef uint64_t d
    with nogil:
        if algo == XX64:
            d = XXH64(&data[0] if data.shape[0] else NULL, data.shape[0], 0)
        elif algo == XXH3:
            d = XXH3_64bits(&data[0] if data.shape[0] else NULL, data.shape[0])
        else:
            d = mayastor_crc32c_update(C_INITIAL, &data[0] if data.shape[0] else NULL,
                                       data.shape[0]) ^ C_INITIAL
    return d
