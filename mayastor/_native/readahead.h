/* A reader thread that keeps the next aligned buffers of a device range read while the caller
 * digests the current one: a scan then costs max(read, hash) instead of read + hash. Reads never
 * cross a multiple of `boundary` (a segment edge), so every buffer belongs to one segment.
 * Plain C with pthreads, used by scan.pyx with the GIL released. */
#ifndef MAYASTOR_READAHEAD_H
#define MAYASTOR_READAHEAD_H

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define RA_MAX_BUFS 8

typedef struct {
    int fd;
    long long start, pos, end, boundary;
    size_t bufsize;
    int nbuf;
    char *buf[RA_MAX_BUFS];
    ssize_t len[RA_MAX_BUFS];
    long long at[RA_MAX_BUFS];
    int head, tail, count;
    int stop, done, err;
    long long failed_at;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started;
} ra_t;

static void *ra_reader(void *arg)
{
    ra_t *ra = (ra_t *)arg;
    long long pos = ra->pos;
    for (;;) {
        pthread_mutex_lock(&ra->mu);
        while (ra->count == ra->nbuf && !ra->stop)
            pthread_cond_wait(&ra->cv, &ra->mu);
        int slot = ra->head;
        int stop = ra->stop;
        pthread_mutex_unlock(&ra->mu);
        if (stop || pos >= ra->end)
            break;
        long long edge = ra->start + ((pos - ra->start) / ra->boundary + 1) * ra->boundary;
        if (edge > ra->end)
            edge = ra->end;
        size_t n = (size_t)(edge - pos) < ra->bufsize ? (size_t)(edge - pos) : ra->bufsize;
        ssize_t r;
        do {
            r = pread(ra->fd, ra->buf[slot], n, pos);
        } while (r < 0 && errno == EINTR);
        if (r <= 0) {
            pthread_mutex_lock(&ra->mu);
            ra->err = r < 0 ? errno : 0;
            ra->failed_at = pos;
            pthread_mutex_unlock(&ra->mu);
            break;
        }
        pthread_mutex_lock(&ra->mu);
        ra->len[slot] = r;
        ra->at[slot] = pos;
        ra->head = (slot + 1) % ra->nbuf;
        ra->count++;
        pthread_cond_broadcast(&ra->cv);
        pthread_mutex_unlock(&ra->mu);
        pos += r;
    }
    pthread_mutex_lock(&ra->mu);
    ra->done = 1;
    pthread_cond_broadcast(&ra->cv);
    pthread_mutex_unlock(&ra->mu);
    return NULL;
}

/* 0 on success, -1 (errno set) when buffers or the thread cannot be had. */
static int ra_start(ra_t *ra, int fd, long long offset, long long length, long long boundary,
                    size_t bufsize, int nbuf)
{
    int i;
    if (nbuf < 2)
        nbuf = 2;
    if (nbuf > RA_MAX_BUFS)
        nbuf = RA_MAX_BUFS;
    ra->fd = fd;
    ra->start = ra->pos = offset;
    ra->end = offset + length;
    ra->boundary = boundary > 0 ? boundary : length + 1;
    ra->bufsize = bufsize;
    ra->nbuf = nbuf;
    ra->head = ra->tail = ra->count = 0;
    ra->stop = ra->done = ra->err = ra->started = 0;
    ra->failed_at = 0;
    for (i = 0; i < RA_MAX_BUFS; i++)
        ra->buf[i] = NULL;
    for (i = 0; i < nbuf; i++) {
        void *p = NULL;
        if (posix_memalign(&p, 4096, bufsize) != 0) {
            errno = ENOMEM;
            return -1;
        }
        ra->buf[i] = (char *)p;
    }
    pthread_mutex_init(&ra->mu, NULL);
    pthread_cond_init(&ra->cv, NULL);
    if (pthread_create(&ra->thread, NULL, ra_reader, ra) != 0) {
        errno = EAGAIN;
        return -1;
    }
    ra->started = 1;
    return 0;
}

/* The next filled buffer: 1 with *data, *n, *pos set; 0 at the end of the range or on an error
 * (ra->err / ra->failed_at tell which). Call ra_release() when done with the buffer. */
static int ra_next(ra_t *ra, char **data, size_t *n, long long *pos)
{
    pthread_mutex_lock(&ra->mu);
    while (ra->count == 0 && !ra->done)
        pthread_cond_wait(&ra->cv, &ra->mu);
    int have = ra->count > 0;
    if (have) {
        *data = ra->buf[ra->tail];
        *n = (size_t)ra->len[ra->tail];
        *pos = ra->at[ra->tail];
    }
    pthread_mutex_unlock(&ra->mu);
    return have;
}

static void ra_release(ra_t *ra)
{
    pthread_mutex_lock(&ra->mu);
    ra->tail = (ra->tail + 1) % ra->nbuf;
    ra->count--;
    pthread_cond_broadcast(&ra->cv);
    pthread_mutex_unlock(&ra->mu);
}

static void ra_finish(ra_t *ra)
{
    int i;
    if (ra->started) {
        pthread_mutex_lock(&ra->mu);
        ra->stop = 1;
        pthread_cond_broadcast(&ra->cv);
        pthread_mutex_unlock(&ra->mu);
        pthread_join(ra->thread, NULL);
        pthread_mutex_destroy(&ra->mu);
        pthread_cond_destroy(&ra->cv);
        ra->started = 0;
    }
    for (i = 0; i < RA_MAX_BUFS; i++) {
        free(ra->buf[i]);
        ra->buf[i] = NULL;
    }
}

#endif
