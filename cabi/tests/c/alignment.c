/* alignment.c: every allocation function honours its alignment.
 *
 * - posix_memalign (from sizeof(void *)), aligned_alloc and memalign (from 1): every power of two
 *   from 1 to 4 MiB, each with sizes 1, 7, 100, a - 1, a, a + 1 and 2a + 3: the result is a
 *   multiple of the alignment, malloc_usable_size is at least the size, and all blocks of one
 *   alignment, live at the same time and each filled over its whole usable size with its own
 *   byte, keep their contents (no two overlap); realloc of an aligned block keeps its contents.
 * - malloc, calloc and realloc: every size 2^k - 1, 2^k, 2^k + 1 up to 4 MiB is aligned to
 *   alignof(max_align_t).
 * - valloc and pvalloc: the same sizes are page-aligned; pvalloc's usable size is the size rounded
 *   up to whole pages.
 * usage: alignment MODE  (MODE is persistent or volatile; the checks are the same)
 */
#include "check.h"

#include <malloc.h>
#include <stdalign.h>
#include <stddef.h>

#define MAX_ALIGN_LOG2 22 /* 4 MiB */
#define MAX_LIVE 64

struct live {
    unsigned char *p;
    size_t usable;
    unsigned char fill;
    const char *what;
    size_t align, size;
};

static struct live live[MAX_LIVE];
static int nlive;

/* Records a fresh block: checks it, fills its whole usable size with its own byte. */
static void track(void *p, const char *what, size_t align, size_t size) {
    CHECK(p != NULL, "%s(align %zu, size %zu) returned NULL (errno %d)", what, align, size, errno);
    CHECK((uintptr_t)p % align == 0, "%s(align %zu, size %zu) = %p is not aligned to %zu", what, align, size, p,
          align);
    size_t u = malloc_usable_size(p);
    CHECK(u >= size, "%s(align %zu, size %zu): malloc_usable_size = %zu is smaller than the size", what, align, size,
          u);
    CHECK(nlive < MAX_LIVE, "too many live blocks");
    struct live *l = &live[nlive];
    *l = (struct live){p, u, (unsigned char)(nlive * 3 + 1), what, align, size};
    nlive++;
    memset(p, l->fill, u);
}

/* Verifies every live block's contents, then frees them all. */
static void verify_and_free(void) {
    for (int i = 0; i < nlive; i++) {
        struct live *l = &live[i];
        for (size_t j = 0; j < l->usable; j++)
            CHECK(l->p[j] == l->fill,
                  "%s(align %zu, size %zu) = %p: byte %zu of %zu usable is %#x, expected %#x "
                  "(overwritten by another block?)",
                  l->what, l->align, l->size, (void *)l->p, j, l->usable, l->p[j], l->fill);
    }
    for (int i = 0; i < nlive; i++) free(live[i].p);
    nlive = 0;
}

static void aligned_functions(void) {
    for (int k = 0; k <= MAX_ALIGN_LOG2; k++) {
        size_t a = (size_t)1 << k;
        size_t sizes[] = {1, 7, 100, a > 1 ? a - 1 : 2, a, a + 1, 2 * a + 3};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            if (a >= sizeof(void *)) {
                void *p = NULL;
                int rc = posix_memalign(&p, a, n);
                CHECK(rc == 0, "posix_memalign(&p, %zu, %zu) returned %d", a, n, rc);
                track(p, "posix_memalign", a, n);
            }
            track(aligned_alloc(a, n), "aligned_alloc", a, n);
            track(memalign(a, n), "memalign", a, n);
        }
        verify_and_free();
    }
}

/* realloc of an aligned block (allowed by glibc) keeps its contents. */
static void realloc_aligned(void) {
    for (int k = 4; k <= MAX_ALIGN_LOG2; k += 3) {
        size_t a = (size_t)1 << k;
        size_t n = a + 100;
        unsigned char *p = memalign(a, n);
        CHECK(p != NULL && (uintptr_t)p % a == 0, "memalign(%zu, %zu) = %p", a, n, (void *)p);
        for (size_t j = 0; j < n; j++) p[j] = (unsigned char)(j * 31 + (size_t)k);
        unsigned char *q = realloc(p, 3 * n);
        CHECK(q != NULL, "realloc(memalign(%zu, %zu), %zu) failed", a, n, 3 * n);
        for (size_t j = 0; j < n; j++)
            CHECK(q[j] == (unsigned char)(j * 31 + (size_t)k), "realloc of a %zu-aligned block lost byte %zu", a, j);
        q = realloc(q, n / 2);
        CHECK(q != NULL, "shrinking realloc of a %zu-aligned block failed", a);
        for (size_t j = 0; j < n / 2; j++)
            CHECK(q[j] == (unsigned char)(j * 31 + (size_t)k), "shrinking realloc of a %zu-aligned block lost byte %zu",
                  a, j);
        free(q);
    }
}

static void fundamental_alignment(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (int k = 0; k <= MAX_ALIGN_LOG2; k++) {
        size_t base = (size_t)1 << k;
        size_t sizes[] = {base - 1, base, base + 1};
        for (size_t s = 0; s < 3; s++) {
            size_t n = sizes[s];
            track(malloc(n), "malloc", alignof(max_align_t), n);
            track(calloc(1, n), "calloc", alignof(max_align_t), n);
            track(realloc(NULL, n), "realloc(NULL)", alignof(max_align_t), n);
            track(valloc(n), "valloc", page, n);
            void *p = pvalloc(n);
            size_t rounded = n == 0 ? page : (n + page - 1) / page * page;
            track(p, "pvalloc", page, rounded);
        }
        verify_and_free();
    }
    /* Growing realloc keeps the fundamental alignment too. */
    void *p = malloc(1);
    for (size_t n = 2; n <= ((size_t)1 << MAX_ALIGN_LOG2); n = n * 3 / 2 + 1) {
        p = realloc(p, n);
        CHECK(p != NULL && (uintptr_t)p % alignof(max_align_t) == 0, "realloc(p, %zu) = %p", n, p);
    }
    free(p);
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: %s persistent|volatile", argv[0]);
    CHECK(crthreads_last_error != NULL, "crthreads is not loaded: malloc is not crthreads' malloc");
    aligned_functions();
    realloc_aligned();
    fundamental_alignment();
    return 0;
}
