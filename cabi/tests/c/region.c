/* region.c: where the malloc family's memory comes from.
 *
 * usage: region MODE BASE CAPACITY
 *   MODE persistent  crthreads initialised itself when loaded: every block the malloc family
 *                    returns (from main, from another thread, and from libc's own internal
 *                    allocations such as strdup and open_memstream) lies inside
 *                    [BASE, BASE + CAPACITY); a request larger than CAPACITY fails with ENOMEM.
 *                    With a CAPACITY of at most 1 GiB the region is also filled until ENOMEM, with
 *                    page runs and then with small blocks: at least half of it is usable, and after
 *                    everything is freed the same number of blocks fit again.
 *   MODE volatile    run with CRTHREADS_AUTO=0: the program works and every block lies outside
 *                    the region.
 *   MODE late-init   run with CRTHREADS_AUTO=0, then crinit(NULL) from main: blocks allocated
 *                    before crinit are outside the region and stay usable afterwards (free,
 *                    realloc keeping contents, malloc_usable_size); new blocks are inside.
 * The environment variable CRT_LINK (preload, shared or static) says how the program was linked;
 * the program checks that libcrthreads.so is loaded as a shared object exactly when it should be.
 * Prints one "layout ..." line on stdout (the addresses of main and of a libc function) for the
 * test driver's re-exec check. Exits 0 on success, 1 with a message otherwise.
 */
#include "check.h"

#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>

/* Weak, so that the same program also builds without -lcrthreads (for LD_PRELOAD). */
#pragma weak crinit
#pragma weak restore

static uintptr_t base, capacity;

static int in_region(const void *p, size_t n) {
    uintptr_t a = (uintptr_t)p;
    return a >= base && a - base < capacity && n <= capacity - (a - base);
}

/* Checks that `p` (n bytes, from `what`) is non-null, inside (or outside) the region, and
 * writable over its whole length. */
static void expect_block(void *p, size_t n, int inside, const char *what) {
    CHECK(p != NULL, "%s returned NULL (errno %d)", what, errno);
    if (inside)
        CHECK(in_region(p, n), "%s = %p (%zu bytes) is not inside the persistent region [%#lx, %#lx)", what, p,
              n, (unsigned long)base, (unsigned long)(base + capacity));
    else
        CHECK(!in_region(p, 1), "%s = %p lies inside the persistent region [%#lx, %#lx), expected volatile memory",
              what, p, (unsigned long)base, (unsigned long)(base + capacity));
    memset(p, 0x5a, n);
}

/* Every allocation function, each block checked by expect_block, then freed. */
static void all_functions(int inside) {
    void *p;
    p = malloc(24);
    expect_block(p, 24, inside, "malloc(24)");
    free(p);
    p = malloc(3 << 20);
    expect_block(p, 3 << 20, inside, "malloc(3 MiB)");
    free(p);
    p = calloc(100, 10);
    expect_block(p, 1000, inside, "calloc(100, 10)");
    p = realloc(p, 200000);
    expect_block(p, 200000, inside, "realloc(p, 200000)");
    p = reallocarray(p, 10, 7);
    expect_block(p, 70, inside, "reallocarray(p, 10, 7)");
    free(p);
    p = realloc(NULL, 50);
    expect_block(p, 50, inside, "realloc(NULL, 50)");
    free(p);
    void *q = NULL;
    int rc = posix_memalign(&q, 256, 1000);
    CHECK(rc == 0, "posix_memalign(&q, 256, 1000) returned %d", rc);
    expect_block(q, 1000, inside, "posix_memalign(256, 1000)");
    free(q);
    p = aligned_alloc(1 << 16, 5000);
    expect_block(p, 5000, inside, "aligned_alloc(64 KiB, 5000)");
    free(p);
    p = memalign(64, 64);
    expect_block(p, 64, inside, "memalign(64, 64)");
    free(p);
    p = valloc(10000);
    expect_block(p, 10000, inside, "valloc(10000)");
    free(p);
    p = pvalloc(10);
    expect_block(p, 4096, inside, "pvalloc(10)");
    free(p);
}

/* libc's own allocations go through the interposed malloc too. */
static void libc_internal(int inside) {
    char *s = strdup("persistent heap");
    expect_block(s, 16, inside, "strdup");
    free(s);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL, "open_memstream failed (errno %d)", errno);
    for (int i = 0; i < 20000; i++) fprintf(f, "%05d", i);
    CHECK(fclose(f) == 0, "fclose(memstream) failed (errno %d)", errno);
    CHECK(len == 100000, "open_memstream produced %zu bytes, expected 100000", len);
    CHECK(memcmp(buf, "00000000010000200003", 20) == 0 && memcmp(buf + len - 5, "19999", 5) == 0,
          "open_memstream's buffer holds the wrong text");
    CHECK(inside ? in_region(buf, len + 1) : !in_region(buf, 1),
          "open_memstream's buffer %p is %s the region, expected %s", (void *)buf,
          in_region(buf, 1) ? "inside" : "outside", inside ? "inside" : "outside");
    free(buf);
}

static void *thread_main(void *arg) {
    int inside = *(int *)arg;
    void *blocks[64];
    for (int i = 0; i < 64; i++) {
        blocks[i] = malloc((size_t)(i + 1) * 100);
        expect_block(blocks[i], (size_t)(i + 1) * 100, inside, "malloc in a second thread");
    }
    for (int i = 0; i < 64; i++) free(blocks[i]);
    return NULL;
}

/* An array outside the allocator under test, for bookkeeping while the region is full. */
static void **mmap_array(size_t n) {
    void *p = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED, "mmap of a bookkeeping array failed (errno %d)", errno);
    return p;
}

struct lib_search {
    int found;
};

static int find_crthreads(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "libcrthreads.so")) ((struct lib_search *)data)->found = 1;
    return 0;
}

/* The link mode the driver built: libcrthreads.so is loaded for preload and shared, not for static. */
static void check_link_mode(void) {
    const char *link = getenv("CRT_LINK");
    CHECK(link != NULL, "CRT_LINK is not set (the test driver sets it to preload, shared or static)");
    struct lib_search s = {0};
    dl_iterate_phdr(find_crthreads, &s);
    if (strcmp(link, "static") == 0)
        CHECK(!s.found, "linked with libcrthreads.a, yet libcrthreads.so is loaded");
    else
        CHECK(s.found, "CRT_LINK=%s, yet libcrthreads.so is not among the loaded objects", link);
}

/* A small workload: a linked list built, summed and freed. */
struct node {
    struct node *next;
    long value;
};

static void workload(int inside) {
    struct node *head = NULL;
    for (long i = 0; i < 20000; i++) {
        struct node *n = malloc(sizeof *n);
        expect_block(n, sizeof *n, inside, "malloc(sizeof(struct node))");
        n->value = i;
        n->next = head;
        head = n;
    }
    long sum = 0;
    while (head) {
        struct node *next = head->next;
        sum += head->value;
        free(head);
        head = next;
    }
    CHECK(sum == 20000L * 19999 / 2, "linked-list sum %ld, expected %ld", sum, 20000L * 19999 / 2);
}

static void threaded(int inside) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, thread_main, &inside) == 0, "pthread_create failed");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join failed");
}

/* A request larger than the region fails cleanly, and the heap still works afterwards. */
static void beyond_capacity(void) {
    errno = 0;
    void *p = malloc(capacity);
    CHECK(p == NULL && errno == ENOMEM, "malloc(capacity = %zu) returned %p with errno %d, expected NULL/ENOMEM",
          (size_t)capacity, p, errno);
    errno = 0;
    p = calloc(capacity / 4096 + 1, 4096);
    CHECK(p == NULL && errno == ENOMEM, "calloc(capacity/4096 + 1, 4096) returned %p with errno %d, expected ENOMEM",
          p, errno);
    size_t quarter = capacity / 4;
    p = malloc(quarter);
    CHECK(p != NULL, "malloc(capacity / 4 = %zu) failed (errno %d)", quarter, errno);
    CHECK(in_region(p, quarter), "malloc(capacity / 4) = %p does not fit inside the region", p);
    ((char *)p)[0] = 1;
    ((char *)p)[quarter - 1] = 2;
    void *q = realloc(p, capacity);
    CHECK(q == NULL, "realloc(p, capacity) returned %p, expected NULL", q);
    CHECK(((char *)p)[0] == 1 && ((char *)p)[quarter - 1] == 2, "a failed realloc changed the block");
    free(p);
}

/* Allocates `size`-byte blocks until malloc fails; returns how many fit. The blocks are kept in
 * `out` (room for `max`) and their first and last bytes written. */
static size_t fill_region(size_t size, void **out, size_t max) {
    size_t n = 0;
    for (;;) {
        CHECK(n < max, "more than %zu blocks of %zu bytes fit in a region of %zu bytes", max, size, (size_t)capacity);
        errno = 0;
        unsigned char *p = malloc(size);
        if (!p) {
            CHECK(errno == ENOMEM, "malloc(%zu) in a full region failed with errno %d, expected ENOMEM", size, errno);
            return n;
        }
        CHECK(in_region(p, size), "malloc(%zu) = %p lies outside the region", size, (void *)p);
        p[0] = 1;
        p[size - 1] = 2;
        out[n++] = p;
    }
}

static void exhaust(void) {
    size_t max = capacity / 1024;
    void **blocks = mmap_array(max);
    static const size_t sizes[] = {1 << 20, 2000};
    for (size_t s = 0; s < 2; s++) {
        size_t size = sizes[s];
        size_t first = fill_region(size, blocks, max);
        CHECK(first * size >= capacity / 2, "only %zu blocks of %zu bytes fit in a region of %zu bytes", first, size,
              (size_t)capacity);
        for (size_t i = 0; i < first; i++) free(blocks[i]);
        size_t second = fill_region(size, blocks, max);
        CHECK(second >= first, "after freeing %zu blocks of %zu bytes, only %zu fit again", first, size, second);
        for (size_t i = 0; i < second; i++) free(blocks[i]);
    }
    void *p = malloc(capacity / 4);
    CHECK(p != NULL, "after filling and emptying the region, malloc(capacity / 4) failed (errno %d)", errno);
    free(p);
    munmap(blocks, max * sizeof(void *));
}

static void late_init(void) {
    /* Before crinit: volatile blocks, small and large, with contents. */
    enum { N = 6 };
    static const size_t sizes[N] = {16, 200, 5000, 40000, 300000, 2 << 20};
    unsigned char *early[N];
    for (int i = 0; i < N; i++) {
        early[i] = malloc(sizes[i]);
        expect_block(early[i], sizes[i], 0, "malloc before crinit");
        for (size_t j = 0; j < sizes[i]; j++) early[i][j] = (unsigned char)(j * 7 + (size_t)i);
    }
    char *early_str = strdup("allocated before crinit");
    expect_block(early_str, 0, 0, "strdup before crinit");

    CHECK(crinit != NULL, "crinit is not available");
    int r = crinit(NULL);
    CHECK(r == 0, "crinit(NULL) returned %d (errno %d), expected 0 (fresh start)", r, errno);
    CHECK(restore() == 0, "restore() returned %d after crinit, expected 0", restore());

    all_functions(1);
    for (int i = 0; i < N; i++) {
        CHECK(malloc_usable_size(early[i]) >= sizes[i], "malloc_usable_size(early block %d) = %zu < %zu", i,
              malloc_usable_size(early[i]), sizes[i]);
        size_t grown = sizes[i] * 2 + 4096;
        unsigned char *p = realloc(early[i], grown);
        CHECK(p != NULL, "realloc(early block of %zu, %zu) failed", sizes[i], grown);
        CHECK(in_region(p, grown), "realloc of an early block to %zu bytes gave %p, outside the region", grown,
              (void *)p);
        for (size_t j = 0; j < sizes[i]; j++)
            CHECK(p[j] == (unsigned char)(j * 7 + (size_t)i),
                  "realloc of an early block of %zu bytes lost byte %zu", sizes[i], j);
        free(p);
    }
    CHECK(strcmp(early_str, "allocated before crinit") == 0, "an early string changed");
    free(early_str);
}

int main(int argc, char **argv) {
    printf("layout main=%p libc=%p\n", (void *)(uintptr_t)main, (void *)(uintptr_t)strtol);
    fflush(stdout);
    CHECK(argc == 4, "usage: %s persistent|volatile|late-init BASE CAPACITY", argv[0]);
    CHECK(crthreads_last_error != NULL, "crthreads is not loaded: malloc is not crthreads' malloc");
    check_link_mode();
    base = (uintptr_t)strtoull(argv[2], NULL, 0);
    capacity = (uintptr_t)strtoull(argv[3], NULL, 0);
    CHECK(base != 0 && capacity != 0, "bad BASE or CAPACITY argument");
    const char *mode = argv[1];
    if (strcmp(mode, "persistent") == 0) {
        CHECK(restore != NULL && restore() == 0, "restore() says crthreads is not initialised on a fresh start");
        all_functions(1);
        libc_internal(1);
        threaded(1);
        workload(1);
        beyond_capacity();
        if (capacity <= ((uintptr_t)1 << 30)) exhaust();
    } else if (strcmp(mode, "volatile") == 0) {
        all_functions(0);
        libc_internal(0);
        threaded(0);
        workload(0);
    } else if (strcmp(mode, "late-init") == 0) {
        late_init();
        libc_internal(1);
        threaded(1);
        workload(1);
    } else {
        CHECK(0, "unknown mode %s", mode);
    }
    return 0;
}
