/* contents.c: what blocks hold.
 *
 * - calloc zeroes: fresh memory, and memory reused after dirty blocks of the same and of other
 *   sizes were freed (small classes, page runs below and above 1 MiB, runs freed by a shrinking
 *   realloc), across calloc(n, s) shapes; then a seeded random mix of malloc / dirty fill /
 *   realloc / free / calloc over sizes from 1 byte to 4 MiB, checking every calloc.
 * - realloc keeps contents when growing and shrinking across the small / large boundary, in
 *   place and when forced to move (a neighbour allocated right after the block), through a
 *   fixed ladder of sizes and a seeded random walk; reallocarray likewise.
 * - malloc_usable_size >= the requested size for every size from 0 to 4096 and a sweep up to
 *   8 MiB, for malloc, calloc, realloc, memalign and pvalloc; the whole usable size is writable
 *   without touching the 16 most recent neighbours.
 * usage: contents MODE  (MODE is persistent or volatile; the checks are the same)
 */
#include "check.h"

#include <malloc.h>

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}
/* Log-uniform size in [1, max]. */
static size_t rnd_size(size_t max) {
    int bits = 0;
    while (((size_t)1 << bits) < max) bits++;
    size_t top = (size_t)1 << (rnd() % (uint64_t)(bits + 1));
    size_t n = 1 + (size_t)(rnd() % top);
    return n > max ? max : n;
}

/* Position-dependent byte for block `tag`, so that shifted or mixed-up copies are caught. */
static inline unsigned char pat(uint32_t tag, size_t i) { return (unsigned char)(tag * 131u + i + (i >> 8) * 7u); }

static void fill(unsigned char *p, uint32_t tag, size_t from, size_t to) {
    for (size_t i = from; i < to; i++) p[i] = pat(tag, i);
}

/* The checks below first scan branch-free (fast), and only look for the position on a mismatch. */
static void expect_pattern(const unsigned char *p, uint32_t tag, size_t n, const char *ctx, size_t a, size_t b) {
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(p[i] ^ pat(tag, i));
    if (!diff) return;
    for (size_t i = 0; i < n; i++)
        CHECK(p[i] == pat(tag, i), "%s (%zu -> %zu): byte %zu of %zu is %#x, expected %#x", ctx, a, b, i, n, p[i],
              pat(tag, i));
}

/* Whether all n bytes at p equal `byte`. */
static int all_bytes(const unsigned char *p, size_t n, unsigned char byte) {
    return n == 0 || (p[0] == byte && memcmp(p, p + 1, n - 1) == 0);
}

static size_t first_not(const unsigned char *p, size_t n, unsigned char byte) {
    size_t i = 0;
    while (i < n && p[i] == byte) i++;
    return i;
}

static void expect_zero(const unsigned char *p, size_t n, const char *ctx, size_t a, size_t b) {
    CHECK(all_bytes(p, n, 0), "%s(%zu, %zu) = %p: byte %zu of %zu is %#x, not zero", ctx, a, b, (const void *)p,
          first_not(p, n, 0), n, p[first_not(p, n, 0)]);
}

/* ---------------------------------------------------------------------------------------- */

static const size_t ladder[] = {
    1,      8,       15,            16,         17,         31,         100,     128,           129,
    1000,   4095,    4096,          4097,       10000,      32767,      32768,   32769,         65536,
    100000, 1 << 20, (1 << 20) + 1, 255 * 4096, 256 * 4096, 257 * 4096, 3 << 20, (4 << 20) + 17,
};
#define NLADDER (sizeof ladder / sizeof ladder[0])

static void calloc_fresh_and_dirty(void) {
    enum { K = 8 };
    for (size_t i = 0; i < NLADDER; i++) {
        size_t n = ladder[i];
        unsigned char *b[K];
        for (int k = 0; k < K; k++) {
            b[k] = calloc(n, 1);
            CHECK(b[k] != NULL, "calloc(%zu, 1) failed (errno %d)", n, errno);
            expect_zero(b[k], n, "first calloc", n, 1);
        }
        /* Dirty them over their whole usable size, free, and calloc the same size again. */
        for (int k = 0; k < K; k++) {
            memset(b[k], 0xa5, malloc_usable_size(b[k]));
            free(b[k]);
        }
        for (int k = 0; k < K; k++) {
            b[k] = calloc(1, n);
            CHECK(b[k] != NULL, "calloc(1, %zu) failed (errno %d)", n, errno);
            expect_zero(b[k], n, "calloc after dirty free", 1, n);
            memset(b[k], 0x5a, malloc_usable_size(b[k]));
        }
        for (int k = 0; k < K; k++) free(b[k]);
        /* Other shapes of the same total. */
        if (n % 8 == 0) {
            unsigned char *p = calloc(n / 8, 8);
            CHECK(p != NULL, "calloc(%zu, 8) failed", n / 8);
            expect_zero(p, n, "calloc after dirty free", n / 8, 8);
            free(p);
        }
    }
    /* Dirty memory of one size reused by calloc of other sizes (large runs split and merged). */
    for (size_t i = 0; i < NLADDER; i++) {
        size_t n = ladder[i];
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu) failed", n);
        memset(p, 0xc3, malloc_usable_size(p));
        free(p);
        size_t m = ladder[(i * 7 + 3) % NLADDER];
        unsigned char *q = calloc(m, 1);
        CHECK(q != NULL, "calloc(%zu, 1) failed", m);
        expect_zero(q, m, "calloc after freeing a dirty block of another size", m, 1);
        memset(q, 0xc4, malloc_usable_size(q));
        free(q);
    }
    /* A shrinking realloc frees the dirty tail of a large block; calloc must not trust it. */
    static const size_t shrink[][2] = {{8 << 20, 1 << 20},       {3 << 20, 100 * 4096}, {2 << 20, 40000},
                                       {600 * 4096, 300 * 4096}, {300 * 4096, 100 * 4096}};
    for (size_t i = 0; i < sizeof shrink / sizeof shrink[0]; i++) {
        size_t from = shrink[i][0], to = shrink[i][1];
        unsigned char *p = malloc(from);
        CHECK(p != NULL, "malloc(%zu) failed", from);
        memset(p, 0x99, from);
        unsigned char *s = realloc(p, to);
        CHECK(s != NULL, "realloc(p, %zu) failed", to);
        CHECK(all_bytes(s, to, 0x99), "shrinking realloc to %zu lost byte %zu", to, first_not(s, to, 0x99));
        size_t tail = from - to;
        unsigned char *c = calloc(1, tail);
        CHECK(c != NULL, "calloc(1, %zu) failed", tail);
        expect_zero(c, tail, "calloc after a shrinking realloc freed a dirty tail", 1, tail);
        unsigned char *d = calloc(tail / 4096, 4096);
        CHECK(d != NULL, "calloc(%zu, 4096) failed", tail / 4096);
        expect_zero(d, tail / 4096 * 4096, "calloc after a shrinking realloc freed a dirty tail", tail / 4096, 4096);
        free(c);
        free(d);
        free(s);
    }
}

#define NSLOTS 48

static void calloc_random(uint64_t seed) {
    struct {
        unsigned char *p;
        size_t n;
    } s[NSLOTS] = {{0}};
    rng_state = seed;
    for (int it = 0; it < 3000; it++) {
        int i = (int)(rnd() % NSLOTS);
        unsigned op = (unsigned)(rnd() % 8);
        size_t n = rnd_size(4 << 20);
        if (s[i].p && op < 3) {
            free(s[i].p);
            s[i].p = NULL;
        } else if (s[i].p && op < 5) {
            unsigned char *q = realloc(s[i].p, n);
            CHECK(q != NULL, "realloc(p, %zu) failed", n);
            s[i].p = q;
            s[i].n = n;
            memset(q, 0xa5, malloc_usable_size(q));
        } else {
            if (s[i].p) free(s[i].p);
            size_t k = (rnd() % 2) ? 1 : 16;
            size_t m = (n + k - 1) / k;
            unsigned char *q = (rnd() % 4) ? calloc(m, k) : calloc(k, m);
            CHECK(q != NULL, "calloc(%zu, %zu) failed", m, k);
            expect_zero(q, m * k, "calloc in the random mix (seed in the source)", m, k);
            memset(q, 0xa5, malloc_usable_size(q));
            s[i].p = q;
            s[i].n = m * k;
        }
    }
    for (int i = 0; i < NSLOTS; i++) free(s[i].p);
}

/* ---------------------------------------------------------------------------------------- */

/* Walks one block through `sizes`, checking the kept prefix at each step. With `block`, a
 * neighbour is allocated after each step so the next growth cannot happen in place. */
static void realloc_walk(const size_t *sizes, size_t count, uint32_t tag, int block, int use_array) {
    unsigned char *p = malloc(sizes[0]);
    CHECK(p != NULL, "malloc(%zu) failed", sizes[0]);
    fill(p, tag, 0, sizes[0]);
    void *blockers[64];
    int nb = 0;
    size_t old = sizes[0];
    for (size_t i = 1; i < count; i++) {
        size_t n = sizes[i];
        unsigned char *q = use_array && n % 4 == 0 ? reallocarray(p, n / 4, 4) : realloc(p, n);
        CHECK(q != NULL, "%s(p, %zu) failed (errno %d)", use_array ? "reallocarray" : "realloc", n, errno);
        CHECK(malloc_usable_size(q) >= n, "after realloc to %zu, malloc_usable_size = %zu", n, malloc_usable_size(q));
        expect_pattern(q, tag, old < n ? old : n, use_array ? "reallocarray kept prefix" : "realloc kept prefix", old,
                       n);
        if (n > old) fill(q, tag, old, n);
        p = q;
        old = n;
        if (block && nb < 64) {
            blockers[nb] = malloc(n % 3 == 0 ? 64 : n % 3 == 1 ? 5000 : 70000);
            CHECK(blockers[nb] != NULL, "malloc of a blocker failed");
            nb++;
        }
    }
    expect_pattern(p, tag, old, "final contents", old, old);
    free(p);
    for (int i = 0; i < nb; i++) free(blockers[i]);
}

static void realloc_contents(void) {
    size_t up[NLADDER], down[NLADDER], jumps[2 * NLADDER];
    for (size_t i = 0; i < NLADDER; i++) {
        up[i] = ladder[i];
        down[i] = ladder[NLADDER - 1 - i];
    }
    for (size_t i = 0; i < 2 * NLADDER; i++) jumps[i] = ladder[(i % 2) ? i / 2 : NLADDER - 1 - i / 2];
    for (int block = 0; block < 2; block++) {
        for (int arr = 0; arr < 2; arr++) {
            realloc_walk(up, NLADDER, 1, block, arr);
            realloc_walk(down, NLADDER, 2, block, arr);
            realloc_walk(jumps, 2 * NLADDER, 3, block, arr);
        }
    }
    /* Same size, one less, one more. */
    for (size_t i = 0; i < NLADDER; i++) {
        size_t n = ladder[i];
        size_t walk[] = {n, n, n > 1 ? n - 1 : 1, n + 1, n};
        realloc_walk(walk, 5, (uint32_t)i + 10, 0, 0);
    }
    /* Seeded random walks. */
    for (uint32_t w = 0; w < 12; w++) {
        size_t walk[40];
        rng_state = 0x9e3779b97f4a7c15ULL * (w + 1);
        for (int i = 0; i < 40; i++) walk[i] = rnd_size(w % 3 == 0 ? (4 << 20) : 70000);
        realloc_walk(walk, 40, 100 + w, (int)(w % 2), (int)(w % 4 >= 2));
    }
}

/* ---------------------------------------------------------------------------------------- */

#define WINDOW 16

static void usable_sizes(void) {
    struct {
        unsigned char *p;
        size_t u;
        unsigned char fill;
    } win[WINDOW] = {{0}};
    int at = 0;
    unsigned serial = 0;
    for (size_t n = 0; n <= ((size_t)8 << 20);) {
        for (int f = 0; f < 5; f++) {
            unsigned char *p;
            const char *what;
            switch (f) {
            case 0: p = malloc(n); what = "malloc"; break;
            case 1: p = calloc(1, n); what = "calloc"; break;
            case 2: p = realloc(NULL, n); what = "realloc(NULL)"; break;
            case 3: p = memalign(64, n); what = "memalign(64)"; break;
            default: p = pvalloc(n); what = "pvalloc"; break;
            }
            CHECK(p != NULL, "%s(%zu) failed (errno %d)", what, n, errno);
            size_t u = malloc_usable_size(p);
            CHECK(u >= n, "%s(%zu): malloc_usable_size = %zu is smaller than requested", what, n, u);
            if (f == 4) CHECK(u >= (n + 4095) / 4096 * 4096 && u >= 4096, "pvalloc(%zu): usable size %zu", n, u);
            /* Retire the oldest block of the window after checking it kept its fill. */
            if (win[at].p) {
                CHECK(all_bytes(win[at].p, win[at].u, win[at].fill),
                      "a block of %zu usable bytes lost byte %zu: a later block's usable size overlaps it", win[at].u,
                      first_not(win[at].p, win[at].u, win[at].fill));
                free(win[at].p);
            }
            unsigned char fillb = (unsigned char)(++serial % 251 + 1);
            memset(p, fillb, u);
            win[at].p = p;
            win[at].u = u;
            win[at].fill = fillb;
            at = (at + 1) % WINDOW;
        }
        if (n < 4096)
            n++;
        else if (n < 70000)
            n += 97;
        else
            n = n * 5 / 4 + 4093;
    }
    for (int i = 0; i < WINDOW; i++) {
        if (!win[i].p) continue;
        CHECK(all_bytes(win[i].p, win[i].u, win[i].fill), "a block of %zu usable bytes lost byte %zu", win[i].u,
              first_not(win[i].p, win[i].u, win[i].fill));
        free(win[i].p);
    }
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: %s persistent|volatile", argv[0]);
    CHECK(crthreads_last_error != NULL, "crthreads is not loaded: malloc is not crthreads' malloc");
    calloc_fresh_and_dirty();
    calloc_random(0x123456789abcdefULL);
    realloc_contents();
    usable_sizes();
    return 0;
}
