/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of WipeReplica CHECKSUM.
 * The SSE4.2 instruction where the CPU has it and it is the faster (measured once at start),
 * otherwise slicing-by-8 tables (any architecture). Callers pass and get back the running, non-inverted value: start with
 * 0xFFFFFFFF and invert once at the very end, as SPDK's spdk_crc32c_update callers do. */
#ifndef MAYASTOR_CRC32C_H
#define MAYASTOR_CRC32C_H

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint32_t mayastor_crc32c_table[8][256];
static int mayastor_crc32c_ready = 0;
static int mayastor_crc32c_hw = 0;

static uint32_t mayastor_crc32c_sw(uint32_t crc, const unsigned char *p, size_t n)
{
    const uint32_t (*t)[256] = (const uint32_t (*)[256])mayastor_crc32c_table;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);
#endif
        v ^= crc;
        crc = t[7][v & 0xff] ^ t[6][(v >> 8) & 0xff] ^ t[5][(v >> 16) & 0xff] ^ t[4][(v >> 24) & 0xff] ^
              t[3][(v >> 32) & 0xff] ^ t[2][(v >> 40) & 0xff] ^ t[1][(v >> 48) & 0xff] ^ t[0][v >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t mayastor_crc32c_sse42(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    crc = (uint32_t)c;
    while (n--)
        crc = __builtin_ia32_crc32qi(crc, *p++);
    return crc;
}
#endif

#if defined(__x86_64__)
static double mayastor_crc32c_seconds(int hw, const unsigned char *buf, size_t n)
{
    struct timespec a, b;
    volatile uint32_t sink;
    clock_gettime(CLOCK_MONOTONIC, &a);
    sink = hw ? mayastor_crc32c_sse42(~0u, buf, n) : mayastor_crc32c_sw(~0u, buf, n);
    clock_gettime(CLOCK_MONOTONIC, &b);
    (void)sink;
    return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
}

/* 1 if the instruction beats the tables here. It does by ~5x on hardware; under an emulator
 * (qemu TCG) the instruction is a helper call per word and runs ~3x slower than the tables. */
static int mayastor_crc32c_calibrate(void)
{
    size_t n = 256 * 1024;
    unsigned char *buf = malloc(n);
    double hw = 0, sw = 0;
    if (buf == NULL)
        return 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 131u);
    for (int round = 0; round < 2; round++) {  /* the first round warms caches and tables */
        hw = mayastor_crc32c_seconds(1, buf, n);
        sw = mayastor_crc32c_seconds(0, buf, n);
    }
    free(buf);
    return hw <= sw;
}
#endif

static void mayastor_crc32c_init(void)
{
    if (mayastor_crc32c_ready)
        return;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        mayastor_crc32c_table[0][i] = c;
    }
    for (int i = 0; i < 256; i++)
        for (int s = 1; s < 8; s++)
            mayastor_crc32c_table[s][i] = (mayastor_crc32c_table[s - 1][i] >> 8) ^
                mayastor_crc32c_table[0][mayastor_crc32c_table[s - 1][i] & 0xff];
    mayastor_crc32c_ready = 1;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        mayastor_crc32c_hw = mayastor_crc32c_calibrate();
#endif
}

static uint32_t mayastor_crc32c_update(uint32_t crc, const void *data, size_t n)
{
#if defined(__x86_64__)
    if (mayastor_crc32c_hw)
        return mayastor_crc32c_sse42(crc, (const unsigned char *)data, n);
#endif
    return mayastor_crc32c_sw(crc, (const unsigned char *)data, n);
}

/* 1 when the hardware instruction is used (reported by the scanner for the benchmark) */
static int mayastor_crc32c_uses_hw(void)
{
    return mayastor_crc32c_hw;
}

static void mayastor_crc32c_force_sw(int sw)
{
#if defined(__x86_64__)
    mayastor_crc32c_hw = sw ? 0 : __builtin_cpu_supports("sse4.2") && mayastor_crc32c_calibrate();
#else
    (void)sw;
#endif
}

#endif
