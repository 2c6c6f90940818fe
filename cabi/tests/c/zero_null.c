/* zero_null.c: NULL pointers and zero sizes, as glibc handles them.
 *
 * - free(NULL) does nothing; malloc_usable_size(NULL) == 0.
 * - realloc(NULL, n) and reallocarray(NULL, n, m) act as malloc: aligned, usable, freeable
 *   (n = 0 included: a unique pointer).
 * - malloc(0), calloc(0, n), calloc(n, 0), valloc(0), aligned_alloc(a, 0), memalign(a, 0) and
 *   posix_memalign(&p, a, 0) return unique, non-null, aligned, freeable pointers.
 * - pvalloc(0) returns one whole, writable, page-aligned page.
 * - realloc(p, 0) and reallocarray(p, 0, m) free p and return NULL, for small, large and
 *   aligned blocks. In MODE persistent this is also checked for leaks: freeing that way far
 *   more memory than the region holds must keep succeeding.
 * usage: zero_null MODE  (MODE is persistent or volatile)
 */
#include "check.h"

#include <malloc.h>
#include <stdalign.h>
#include <stddef.h>

static void null_pointers(void) {
    for (int i = 0; i < 1000; i++) free(NULL);
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu, expected 0", malloc_usable_size(NULL));
    static const size_t sizes[] = {1, 16, 17, 1000, 32768, 32769, 100000, 1 << 20, (3 << 20) + 7};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = realloc(NULL, n);
        CHECK(p != NULL, "realloc(NULL, %zu) returned NULL (errno %d)", n, errno);
        CHECK((uintptr_t)p % alignof(max_align_t) == 0, "realloc(NULL, %zu) = %p is misaligned", n, (void *)p);
        CHECK(malloc_usable_size(p) >= n, "realloc(NULL, %zu): usable size %zu", n, malloc_usable_size(p));
        memset(p, 0xee, n);
        unsigned char *q = reallocarray(NULL, n, 3);
        CHECK(q != NULL, "reallocarray(NULL, %zu, 3) returned NULL (errno %d)", n, errno);
        CHECK(malloc_usable_size(q) >= 3 * n, "reallocarray(NULL, %zu, 3): usable size %zu", n,
              malloc_usable_size(q));
        memset(q, 0xdd, 3 * n);
        for (size_t j = 0; j < n; j++) CHECK(p[j] == 0xee, "realloc(NULL, %zu)'s block was overwritten", n);
        free(p);
        free(q);
    }
}

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

#define NZERO 7
#define PER 300

/* Zero-size requests from every function: non-null, aligned, and pairwise distinct. */
static void zero_sizes(void) {
    static uintptr_t all[NZERO * PER];
    static const char *names[NZERO] = {"malloc(0)",          "calloc(0, 8)",     "calloc(8, 0)",
                                       "realloc(NULL, 0)",   "aligned_alloc(64, 0)", "memalign(256, 0)",
                                       "posix_memalign(&p, 32, 0)"};
    static const size_t aligns[NZERO] = {1, 1, 1, 1, 64, 256, 32};
    int n = 0;
    for (int i = 0; i < PER; i++) {
        for (int f = 0; f < NZERO; f++) {
            void *p = NULL;
            errno = 0;
            switch (f) {
            case 0: p = malloc(0); break;
            case 1: p = calloc(0, 8); break;
            case 2: p = calloc(8, 0); break;
            case 3: p = realloc(NULL, 0); break;
            case 4: p = aligned_alloc(64, 0); break;
            case 5: p = memalign(256, 0); break;
            case 6: {
                int rc = posix_memalign(&p, 32, 0);
                CHECK(rc == 0, "posix_memalign(&p, 32, 0) returned %d", rc);
                break;
            }
            }
            CHECK(p != NULL, "%s returned NULL (errno %d); glibc returns a unique pointer", names[f], errno);
            CHECK((uintptr_t)p % aligns[f] == 0, "%s = %p is not aligned to %zu", names[f], p, aligns[f]);
            all[n++] = (uintptr_t)p;
        }
    }
    qsort(all, (size_t)n, sizeof all[0], cmp_ptr);
    for (int i = 1; i < n; i++)
        CHECK(all[i] != all[i - 1], "two live zero-size allocations share the address %#lx", (unsigned long)all[i]);
    for (int i = 0; i < n; i++) free((void *)all[i]);

    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *v = valloc(0);
    CHECK(v != NULL && (uintptr_t)v % page == 0, "valloc(0) = %p, expected a page-aligned pointer", v);
    void *w = valloc(0);
    CHECK(w != NULL && w != v, "two valloc(0) calls returned %p and %p", v, w);
    free(v);
    free(w);

    unsigned char *pv = pvalloc(0);
    CHECK(pv != NULL, "pvalloc(0) returned NULL (errno %d)", errno);
    CHECK((uintptr_t)pv % page == 0, "pvalloc(0) = %p is not page-aligned", (void *)pv);
    CHECK(malloc_usable_size(pv) >= page, "pvalloc(0): usable size %zu, expected a whole page (%zu)",
          malloc_usable_size(pv), page);
    memset(pv, 0x77, page);
    unsigned char *pv2 = pvalloc(0);
    CHECK(pv2 != NULL && pv2 != pv, "a second pvalloc(0) returned %p (first %p)", (void *)pv2, (void *)pv);
    memset(pv2, 0x88, page);
    for (size_t j = 0; j < page; j++) CHECK(pv[j] == 0x77, "pvalloc(0)'s page was overwritten at byte %zu", j);
    free(pv);
    free(pv2);
}

/* realloc(p, 0) frees p and returns NULL. */
static void realloc_to_zero(int persistent) {
    static const size_t sizes[] = {0, 1, 100, 4096, 32768, 40000, 1 << 20, 5 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu) failed", n);
        memset(p, 1, n);
        void *r = realloc(p, 0);
        CHECK(r == NULL, "realloc(malloc(%zu), 0) returned %p, expected NULL (glibc frees the block)", n, r);
        p = memalign(4096, n);
        CHECK(p != NULL, "memalign(4096, %zu) failed", n);
        r = realloc(p, 0);
        CHECK(r == NULL, "realloc(memalign(4096, %zu), 0) returned %p, expected NULL", n, r);
        p = calloc(1, n);
        CHECK(p != NULL, "calloc(1, %zu) failed", n);
        r = reallocarray(p, 0, 16);
        CHECK(r == NULL, "reallocarray(calloc(1, %zu), 0, 16) returned %p, expected NULL", n, r);
        p = malloc(n);
        CHECK(p != NULL, "malloc(%zu) failed", n);
        r = reallocarray(p, 16, 0);
        CHECK(r == NULL, "reallocarray(malloc(%zu), 16, 0) returned %p, expected NULL", n, r);
    }
    if (!persistent) return;
    /* 80 GiB released through realloc(p, 0) from a region of 64 GiB: if realloc(p, 0) leaked,
     * the region would run out. The blocks are never touched, so this costs no memory. */
    const size_t big = (size_t)16 << 20;
    for (int i = 0; i < 5120; i++) {
        void *p = (i % 2) ? malloc(big) : memalign(1 << 20, big);
        CHECK(p != NULL, "allocation %d of 16 MiB failed (errno %d): realloc(p, 0) leaks", i, errno);
        void *r = (i % 4 < 2) ? realloc(p, 0) : reallocarray(p, 0, 1);
        CHECK(r == NULL, "realloc(16 MiB block, 0) returned %p", r);
    }
    for (int i = 0; i < 200000; i++) {
        void *p = malloc(64);
        CHECK(p != NULL, "malloc(64) failed at iteration %d (errno %d)", i, errno);
        CHECK(realloc(p, 0) == NULL, "realloc(p, 0) did not return NULL");
    }
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: %s persistent|volatile", argv[0]);
    CHECK(crthreads_last_error != NULL, "crthreads is not loaded: malloc is not crthreads' malloc");
    null_pointers();
    zero_sizes();
    realloc_to_zero(strcmp(argv[1], "persistent") == 0);
    return 0;
}
