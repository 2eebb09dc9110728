# cython: language_level=3, boundscheck=False, wraparound=False
"""Block copy between two file descriptors: aligned buffer, GIL released, all-zero chunks skipped.

``copy_range`` is the inner loop of a rebuild. The caller (mayastor/rebuild/copier.py) passes only the
ranges worth copying (allocated in the source), paces the calls (rate limit, pause, stop) and
checkpoints between them."""

from libc.errno cimport errno, EINTR, ENOSPC
from libc.string cimport memcmp, memcpy
from posix.unistd cimport pread, pwrite

from mayastor._native._buffer cimport AlignedBuffer


cdef inline bint _all_zero(const char *p, size_t n) noexcept nogil:
    # p[0] == 0 and every byte equals its predecessor: one memcmp at memory speed
    return n == 0 or (p[0] == 0 and memcmp(p, p + 1, n - 1) == 0)


cdef ssize_t _io_full(int fd, char *buf, size_t n, long long off, bint write) noexcept nogil:
    """pread/pwrite all of ``n`` bytes, retrying short transfers and EINTR. Returns the bytes moved
    (fewer at the end of the device) or -errno."""
    cdef size_t done = 0
    cdef ssize_t r
    while done < n:
        if write:
            r = pwrite(fd, buf + done, n - done, off + done)
        else:
            r = pread(fd, buf + done, n - done, off + done)
        if r < 0:
            if errno == EINTR:
                continue
            return -errno
        if r == 0:
            break  # end of device
        done += r
    return done


def copy_range(int src, int dst, long long offset, long long length, AlignedBuffer buf, bint skip_zero=True):
    """Copy ``length`` bytes at ``offset`` from ``src`` to the same offset of ``dst``.

    Chunks that read as all zeros are not written when ``skip_zero`` (the destination must already
    read zeros there: a fresh or discarded thin volume). Returns (bytes_read, bytes_written).
    Raises OSError naming the side and offset that failed; a short source ends the copy early."""
    cdef long long pos = offset, end = offset + length
    cdef long long read_total = 0, written_total = 0
    cdef ssize_t r = 0, w = 0
    cdef size_t n
    cdef int failed_side = 0  # 1 source, 2 destination
    cdef long long failed_at = 0
    if length < 0 or offset < 0:
        raise ValueError("negative offset or length")
    with nogil:
        while pos < end:
            n = buf.size if end - pos > <long long>buf.size else <size_t>(end - pos)
            r = _io_full(src, buf.data, n, pos, False)
            if r < 0:
                failed_side, failed_at = 1, pos
                break
            if r == 0:
                break
            read_total += r
            if not (skip_zero and _all_zero(buf.data, r)):
                w = _io_full(dst, buf.data, r, pos, True)
                if 0 <= w < r:
                    w = -ENOSPC  # the destination ended before the source
                if w < 0:
                    failed_side, failed_at = 2, pos
                    break
                written_total += w
            pos += r
            if <size_t>r < n:
                break
    if failed_side:
        code = -(r if failed_side == 1 else w)
        side = "read source" if failed_side == 1 else "write destination"
        raise OSError(code, f"{side} at byte {failed_at}")
    return read_total, written_total


def all_zero(AlignedBuffer buf, size_t n):
    """Whether the first ``n`` bytes of ``buf`` are zero (exposed for tests and the benchmark)."""
    if n > buf.size:
        raise ValueError("n exceeds the buffer")
    cdef bint z
    with nogil:
        z = _all_zero(buf.data, n)
    return z


def fill(AlignedBuffer buf, bytes data, size_t offset=0):
    """Copy ``data`` into the buffer at ``offset`` (tests and the benchmark)."""
    if offset + len(data) > buf.size:
        raise ValueError("data does not fit")
    memcpy(buf.data + offset, <const char *>data, len(data))
