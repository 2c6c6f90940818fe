/* errno.c: failure conventions of the malloc family (POSIX and glibc).
 *
 * - Every function fails with NULL and errno ENOMEM for sizes no heap can serve (SIZE_MAX,
 *   SIZE_MAX/2 + 1, PTRDIFF_MAX, 2^48, and sizes that overflow once alignment or page rounding
 *   is added).
 * - calloc and reallocarray fail with ENOMEM when n * size overflows, including products that
 *   wrap to exactly zero or to a small number.
 * - A failed realloc / reallocarray leaves the old block intact and usable.
 * - Bad alignments: posix_memalign returns EINVAL (0, non-powers of two, powers of two smaller
 *   than sizeof(void *)) and ENOMEM (huge alignment or size) as its result, leaves *out
 *   untouched and succeeds for every valid alignment; aligned_alloc sets EINVAL for an alignment
 *   that is not a power of two (0 included); memalign rounds a non-power of two up and sets
 *   EINVAL only when no power of two is large enough.
 * - free leaves errno unchanged (POSIX.1-2024; glibc since 2.33), for NULL and for blocks of every
 *   kind (small, page runs, runs large enough to be given back to the kernel, aligned).
 * - After all of these failures the allocator still works.
 * usage: errno MODE  (MODE is persistent or volatile; the checks are the same)
 */
#include "check.h"

#include <malloc.h>

/* Evaluates the allocation expression `call` with errno cleared; it must give NULL and ENOMEM. */
#define EXPECT_FAIL(call, want_errno)                                                              \
    do {                                                                                           \
        errno = 0;                                                                                 \
        void *r_ = (call);                                                                         \
        int e_ = errno;                                                                            \
        CHECK(r_ == NULL && e_ == (want_errno), "%s returned %p with errno %d (%s), expected NULL with errno %d", \
              #call, r_, e_, strerror(e_), (want_errno));                                          \
    } while (0)

static const size_t huge[] = {
    SIZE_MAX,
    SIZE_MAX - 1,
    SIZE_MAX - 4095,
    SIZE_MAX - 4096,
    SIZE_MAX - (1 << 20),
    SIZE_MAX / 2 + 1,
    PTRDIFF_MAX,
    (size_t)1 << 48,
};
#define NHUGE (sizeof huge / sizeof huge[0])

static void huge_sizes(void) {
    for (size_t i = 0; i < NHUGE; i++) {
        size_t n = huge[i];
        EXPECT_FAIL(malloc(n), ENOMEM);
        EXPECT_FAIL(calloc(1, n), ENOMEM);
        EXPECT_FAIL(calloc(n, 1), ENOMEM);
        EXPECT_FAIL(realloc(NULL, n), ENOMEM);
        EXPECT_FAIL(reallocarray(NULL, n, 1), ENOMEM);
        EXPECT_FAIL(aligned_alloc(16, n), ENOMEM);
        EXPECT_FAIL(aligned_alloc(4096, n), ENOMEM);
        EXPECT_FAIL(aligned_alloc(1 << 20, n), ENOMEM);
        EXPECT_FAIL(memalign(64, n), ENOMEM);
        EXPECT_FAIL(memalign(1 << 21, n), ENOMEM);
        EXPECT_FAIL(valloc(n), ENOMEM);
        EXPECT_FAIL(pvalloc(n), ENOMEM);
        for (size_t align = sizeof(void *); align <= (1 << 22); align <<= 3) {
            int sentinel;
            void *out = &sentinel;
            int rc = posix_memalign(&out, align, n);
            CHECK(rc == ENOMEM, "posix_memalign(&out, %zu, %#zx) returned %d, expected ENOMEM (%d)", align, n, rc,
                  ENOMEM);
            CHECK(out == &sentinel, "posix_memalign(&out, %zu, %#zx) failed but changed *out to %p", align, n, out);
        }
    }
}

static void overflowing_products(void) {
    static const size_t pairs[][2] = {
        {SIZE_MAX / 2, 3},
        {3, SIZE_MAX / 2},
        {SIZE_MAX, SIZE_MAX},
        {SIZE_MAX, 2},
        {(size_t)1 << 32, (size_t)1 << 32},     /* wraps to exactly 0 */
        {((size_t)1 << 32) + 1, (size_t)1 << 32}, /* wraps to 2^32 */
        {((size_t)1 << 63) + 1, 2},               /* wraps to 2 */
        {SIZE_MAX / 16 + 1, 16},                  /* wraps to 0 */
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t n = pairs[i][0], s = pairs[i][1];
        errno = 0;
        void *p = calloc(n, s);
        CHECK(p == NULL && errno == ENOMEM, "calloc(%#zx, %#zx) (product overflows) returned %p with errno %d", n, s,
              p, errno);
        errno = 0;
        p = reallocarray(NULL, n, s);
        CHECK(p == NULL && errno == ENOMEM, "reallocarray(NULL, %#zx, %#zx) (product overflows) returned %p, errno %d",
              n, s, p, errno);
    }
    /* reallocarray overflow on a live block: NULL/ENOMEM and the block is untouched. */
    unsigned char *b = malloc(100);
    CHECK(b != NULL, "malloc(100) failed");
    memset(b, 0x3c, 100);
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = 0;
        void *p = reallocarray(b, pairs[i][0], pairs[i][1]);
        CHECK(p == NULL && errno == ENOMEM, "reallocarray(b, %#zx, %#zx) returned %p with errno %d", pairs[i][0],
              pairs[i][1], p, errno);
    }
    for (int i = 0; i < 100; i++) CHECK(b[i] == 0x3c, "a failed reallocarray changed byte %d of the block", i);
    free(b);
}

/* A failed realloc keeps the block: small, large and aligned blocks, several huge sizes. */
static void failed_realloc_keeps_block(void) {
    static const size_t sizes[] = {1, 100, 4096, 40000, 1 << 20, 5 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *b = (i % 2) ? malloc(n) : memalign(4096, n);
        CHECK(b != NULL, "allocating %zu bytes failed", n);
        for (size_t j = 0; j < n; j++) b[j] = (unsigned char)(j * 13 + 1);
        for (size_t h = 0; h < NHUGE; h++) {
            errno = 0;
            void *p = realloc(b, huge[h]);
            CHECK(p == NULL && errno == ENOMEM, "realloc(block of %zu, %#zx) returned %p with errno %d", n, huge[h], p,
                  errno);
            errno = 0;
            p = reallocarray(b, huge[h], 1);
            CHECK(p == NULL && errno == ENOMEM, "reallocarray(block of %zu, %#zx, 1) returned %p with errno %d", n,
                  huge[h], p, errno);
        }
        for (size_t j = 0; j < n; j++)
            CHECK(b[j] == (unsigned char)(j * 13 + 1), "a failed realloc changed byte %zu of a %zu-byte block", j, n);
        CHECK(malloc_usable_size(b) >= n, "after a failed realloc, malloc_usable_size = %zu < %zu",
              malloc_usable_size(b), n);
        unsigned char *c = realloc(b, n + 1000);
        CHECK(c != NULL, "realloc after a failed realloc failed");
        for (size_t j = 0; j < n; j++)
            CHECK(c[j] == (unsigned char)(j * 13 + 1), "realloc after a failed realloc lost byte %zu", j);
        free(c);
    }
}

static void bad_alignments(void) {
    /* posix_memalign: EINVAL for 0, non-powers of two and powers of two below sizeof(void *). */
    static const size_t bad[] = {0, 1, 2, 4, 3, 5, 12, 24, 48, 100, 4095, 4097, 3 << 20, SIZE_MAX, SIZE_MAX - 7,
                                 (SIZE_MAX / 2 + 1) + 8};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t a = bad[i];
        if (a == sizeof(void *)) continue;
        for (int k = 0; k < 2; k++) {
            size_t n = k ? 100000 : 16;
            int sentinel;
            void *out = &sentinel;
            int rc = posix_memalign(&out, a, n);
            CHECK(rc == EINVAL, "posix_memalign(&out, %#zx, %zu) returned %d, expected EINVAL (%d)", a, n, rc, EINVAL);
            CHECK(out == &sentinel, "posix_memalign(&out, %#zx, %zu) failed but changed *out to %p", a, n, out);
        }
    }
    /* posix_memalign: every valid alignment from sizeof(void *) to 2^40 with a small size succeeds
     * or (for alignments no region can honour) returns ENOMEM; up to 1 MiB it must succeed. */
    for (size_t a = sizeof(void *); a <= ((size_t)1 << 40); a <<= 1) {
        int sentinel;
        void *out = &sentinel;
        int rc = posix_memalign(&out, a, 8);
        if (a <= (1 << 20)) {
            CHECK(rc == 0, "posix_memalign(&out, %zu, 8) returned %d, expected 0", a, rc);
        } else {
            CHECK(rc == 0 || rc == ENOMEM, "posix_memalign(&out, %#zx, 8) returned %d, expected 0 or ENOMEM", a, rc);
        }
        if (rc == 0) {
            CHECK(out != &sentinel && out != NULL && (uintptr_t)out % a == 0,
                  "posix_memalign(&out, %#zx, 8) returned 0 with *out = %p", a, out);
            free(out);
        } else {
            CHECK(out == &sentinel, "posix_memalign(&out, %#zx, 8) failed but changed *out", a);
        }
    }
    /* The largest power-of-two alignment is valid but cannot be served. */
    {
        int sentinel;
        void *out = &sentinel;
        int rc = posix_memalign(&out, SIZE_MAX / 2 + 1, 1);
        CHECK(rc == ENOMEM, "posix_memalign(&out, 2^63, 1) returned %d, expected ENOMEM", rc);
        CHECK(out == &sentinel, "posix_memalign(&out, 2^63, 1) failed but changed *out");
    }

    /* aligned_alloc: EINVAL unless the alignment is a power of two. */
    static const size_t not_pow2[] = {0, 3, 5, 6, 12, 24, 100, 4095, 4097, 3 << 20, SIZE_MAX, SIZE_MAX / 2 + 2};
    for (size_t i = 0; i < sizeof not_pow2 / sizeof not_pow2[0]; i++) {
        EXPECT_FAIL(aligned_alloc(not_pow2[i], 64), EINVAL);
        EXPECT_FAIL(aligned_alloc(not_pow2[i], 0), EINVAL);
    }
    EXPECT_FAIL(aligned_alloc(SIZE_MAX / 2 + 1, 1), ENOMEM);

    /* memalign: alignment rounded up to a power of two; EINVAL when none is large enough. */
    static const size_t round_up[][2] = {{0, 1}, {3, 4}, {24, 32}, {100, 128}, {4095, 4096}, {4097, 8192},
                                         {(3 << 20) - 5, 4 << 20}};
    for (size_t i = 0; i < sizeof round_up / sizeof round_up[0]; i++) {
        size_t a = round_up[i][0], want = round_up[i][1];
        void *p = memalign(a, 40);
        CHECK(p != NULL, "memalign(%zu, 40) failed (errno %d); glibc rounds the alignment up", a, errno);
        CHECK((uintptr_t)p % want == 0, "memalign(%zu, 40) = %p is not aligned to %zu", a, p, want);
        free(p);
    }
    EXPECT_FAIL(memalign(SIZE_MAX, 1), EINVAL);
    EXPECT_FAIL(memalign(SIZE_MAX / 2 + 2, 1), EINVAL);
    EXPECT_FAIL(memalign(SIZE_MAX / 2 + 1, 1), ENOMEM);
}

static void free_keeps_errno(void) {
    errno = 4242;
    free(NULL);
    CHECK(errno == 4242, "free(NULL) changed errno to %d", errno);
    static const size_t sizes[] = {0, 1, 100, 5000, 32768, 40000, 300000, 1 << 20, 16 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        for (int k = 0; k < 3; k++) {
            void *p = k == 0 ? malloc(n) : k == 1 ? memalign(1 << 16, n) : calloc(1, n);
            CHECK(p != NULL, "allocating %zu bytes failed", n);
            memset(p, 1, n);
            errno = 4242;
            free(p);
            CHECK(errno == 4242, "free of a %zu-byte block changed errno to %d (%s)", n, errno, strerror(errno));
        }
    }
}

/* After all the failures above, ordinary requests still work. */
static void still_works(void) {
    void *blocks[100];
    for (int i = 0; i < 100; i++) {
        size_t n = (size_t)i * 997 + 1;
        blocks[i] = malloc(n);
        CHECK(blocks[i] != NULL, "malloc(%zu) failed after the failure tests (errno %d)", n, errno);
        memset(blocks[i], i, n);
    }
    for (int i = 0; i < 100; i++) {
        unsigned char *b = blocks[i];
        size_t n = (size_t)i * 997 + 1;
        for (size_t j = 0; j < n; j++) CHECK(b[j] == (unsigned char)i, "block %d byte %zu was overwritten", i, j);
        free(b);
    }
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: %s persistent|volatile", argv[0]);
    CHECK(crthreads_last_error != NULL, "crthreads is not loaded: malloc is not crthreads' malloc");
    huge_sizes();
    overflowing_products();
    failed_realloc_keeps_block();
    bad_alignments();
    free_keeps_errno();
    still_works();
    return 0;
}
