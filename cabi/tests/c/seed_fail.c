/* seed_fail.c: failing checkpoints, the root's size check, and crmalloc.
 *
 * usage:
 *   seed_fail unwritable
 *       CRTHREADS_DIR lies under a regular file, so the directory cannot be created: the library
 *       stops the program before main (the driver checks the message and the exit status);
 *       reaching main is a failure.
 *   seed_fail recover
 *       A directory named slot-0 inside CRTHREADS_DIR keeps the slot file from being created.
 *       The program writes a block A, and checkpoint() must fail (-1, errno set, a message
 *       naming the path); it then removes the obstacle, writes a block B (A is not touched
 *       again) and checkpoint() must succeed. Prints "READY" and waits to be killed.
 *   seed_fail recovered
 *       The next run: restore() is 1, and both A (written only before the failed checkpoint)
 *       and B are in the restored heap. Exits 0.
 *   seed_fail api
 *       crthreads_root_get: the same block for the same size; NULL with errno EINVAL (and a
 *       message naming both sizes) for another size, after which the root is unchanged.
 *       crmalloc / crrealloc / crfree behave like malloc / realloc / free and share their heap:
 *       blocks lie next to malloc's (in the persistent region), are writable over
 *       malloc_usable_size, keep their contents through crrealloc, can be freed by either free;
 *       crmalloc(SIZE_MAX) and crrealloc(p, SIZE_MAX) fail with ENOMEM (p intact);
 *       crrealloc(NULL, n) allocates and crfree(NULL) does nothing. A crmalloc'd list hangs off
 *       the root; checkpoint() returns 0; prints "READY" and waits to be killed.
 *   seed_fail api-check
 *       The next run: restore() is 1, the root is the same block, the crmalloc'd list is intact
 *       and can be freed with crfree, and another size is still refused. Exits 0.
 * Failed checkpoints print "checkpoint-errno N TEXT" on stdout: the driver expects EISDIR, the
 * reason the OS gives for opening a directory as the slot file.
 * Prints "root 0x..." with the root's address. Exits 0 on success, 1 with a message.
 * For LD_PRELOAD the program is built without -lcrthreads: the crthreads functions are weak.
 */
#include "check.h"

#include <malloc.h>
#include <sys/stat.h>

#pragma weak checkpoint
#pragma weak restore
#pragma weak crmalloc
#pragma weak crfree
#pragma weak crrealloc
#pragma weak crthreads_root_get

/* The documented defaults of CRTHREADS_BASE and CRTHREADS_CAPACITY (the driver sets neither). */
#define REGION_BASE 0x200000000000UL
#define REGION_SIZE (64UL << 30)

static int in_region(const void *p) { return (uintptr_t)p - REGION_BASE < REGION_SIZE; }

#define MAGIC 0x5eedc0de0c0c0003ULL
#define A_LEN 300000
#define B_LEN 100000
#define LIST_LEN 200

struct item {
    long n;
    char text[40];
    struct item *next;
};

struct root {
    unsigned long long magic;
    unsigned char *a, *b; /* recover mode */
    struct item *list;    /* api mode, crmalloc'd */
    char *grown;          /* api mode, crrealloc'd */
};

static struct root *get_root(int want_restored) {
    int r = restore();
    CHECK(r == want_restored, "restore() returned %d, expected %d", r, want_restored);
    struct root *root = crthreads_root_get(sizeof *root);
    CHECK(root != NULL, "crthreads_root_get failed (errno %d: %s)", errno, last_error());
    printf("root %p\n", (void *)root);
    if (!want_restored) {
        static const struct root zero;
        CHECK(memcmp(root, &zero, sizeof *root) == 0, "the root is not zeroed on a fresh start");
        root->magic = MAGIC;
    } else {
        CHECK(root->magic == MAGIC, "restored root has magic %llx, expected %llx", root->magic, MAGIC);
    }
    return root;
}

/* checkpoint() must fail with -1, errno set, and a message naming `path`. Prints
 * "checkpoint-errno N" for the driver, which checks the value (ENOTDIR or EEXIST: the OS's reason)
 * after the rest of the scenario. */
static void expect_checkpoint_fails(const char *path, const char *label) {
    errno = 0;
    int rc = checkpoint();
    int e = errno;
    CHECK(rc == -1, "%s: checkpoint() returned %d, expected -1", label, rc);
    CHECK(e != 0, "%s: checkpoint() returned -1 without setting errno", label);
    const char *m = last_error();
    CHECK(strstr(m, path) != NULL, "%s: crthreads_last_error() = \"%s\" does not name %s", label, m, path);
    printf("checkpoint-errno %d %s\n", e, strerror(e));
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * seed + (i >> 9));
}

static void check_fill(const unsigned char *p, size_t n, unsigned seed, const char *what) {
    for (size_t i = 0; i < n; i++)
        CHECK(p[i] == (unsigned char)(i * seed + (i >> 9)), "%s differs at byte %zu", what, i);
}

static void unwritable(void) {
    CHECK(0, "main was reached although CRTHREADS_DIR=%s cannot be created", getenv("CRTHREADS_DIR"));
}

static void recover(void) {
    const char *dir = getenv("CRTHREADS_DIR");
    CHECK(dir != NULL, "CRTHREADS_DIR is not set");
    struct root *root = get_root(0);
    char blocker[4096];
    snprintf(blocker, sizeof blocker, "%s/slot-0", dir);
    CHECK(mkdir(blocker, 0700) == 0, "cannot create %s (errno %d)", blocker, errno);
    root->a = malloc(A_LEN);
    CHECK(root->a != NULL, "malloc failed");
    fill(root->a, A_LEN, 7);
    expect_checkpoint_fails(dir, "checkpoint while the directory cannot be created");
    check_fill(root->a, A_LEN, 7, "block A after the failed checkpoint");
    CHECK(rmdir(blocker) == 0, "rmdir %s (errno %d)", blocker, errno);
    /* Block A is not written again: the next checkpoint must still include it. */
    root->b = malloc(B_LEN);
    CHECK(root->b != NULL, "malloc failed");
    fill(root->b, B_LEN, 11);
    errno = 0;
    int rc = checkpoint();
    CHECK(rc == 0, "checkpoint() after the directory became creatable returned %d (errno %d: %s)", rc, errno,
          last_error());
    WAIT_TO_BE_KILLED();
}

static void recovered(void) {
    struct root *root = get_root(1);
    CHECK(root->a && root->b, "restored root lacks its blocks (a %p, b %p)", (void *)root->a, (void *)root->b);
    check_fill(root->a, A_LEN, 7, "restored block A (written before the failed checkpoint only)");
    check_fill(root->b, B_LEN, 11, "restored block B");
    printf("done\n");
}

static void root_size_check(struct root *root) {
    CHECK(crthreads_root_get(sizeof *root) == root, "crthreads_root_get with the same size gave another block");
    errno = 0;
    void *p = crthreads_root_get(sizeof *root + 8);
    int e = errno;
    CHECK(p == NULL && e == EINVAL, "crthreads_root_get(%zu) with a root of %zu bytes returned %p (errno %d), "
          "expected NULL with errno EINVAL", sizeof *root + 8, sizeof *root, p, e);
    char have[32], asked[32];
    snprintf(have, sizeof have, "%zu", sizeof *root);
    snprintf(asked, sizeof asked, "%zu", sizeof *root + 8);
    CHECK(strstr(last_error(), have) && strstr(last_error(), asked),
          "crthreads_last_error() = \"%s\" should name the root's size (%s) and the size asked for (%s)", last_error(),
          have, asked);
    errno = 0;
    p = crthreads_root_get(8);
    CHECK(p == NULL && errno == EINVAL, "crthreads_root_get(8) returned %p (errno %d), expected NULL / EINVAL", p,
          errno);
    CHECK(crthreads_root_get(sizeof *root) == root, "the root changed after a refused size");
    CHECK(root->magic == MAGIC, "the root's contents changed after a refused size");
}

static void api(void) {
    struct root *root = get_root(0);
    root_size_check(root);

    /* crmalloc is malloc's heap. */
    char *m = malloc(100), *c = crmalloc(100);
    CHECK(m && c, "malloc %p / crmalloc %p returned NULL (errno %d)", (void *)m, (void *)c, errno);
    CHECK(in_region(m) && in_region(c), "malloc %p and crmalloc %p are not both in the persistent region",
          (void *)m, (void *)c);
    CHECK(m != c, "malloc and crmalloc returned the same live block");
    CHECK(malloc_usable_size(c) >= 100, "malloc_usable_size(crmalloc(100)) = %zu", malloc_usable_size(c));
    memset(c, 0xab, malloc_usable_size(c));
    memset(m, 0xcd, 100);
    free(c);   /* a crmalloc'd block freed by free */
    crfree(m); /* a malloc'd block freed by crfree */
    crfree(NULL);

    for (size_t n = 1; n <= (8u << 20); n = n * 3 + 1) {
        unsigned char *p = crmalloc(n);
        CHECK(p != NULL && in_region(p), "crmalloc(%zu) = %p (errno %d)", n, (void *)p, errno);
        CHECK(malloc_usable_size(p) >= n, "malloc_usable_size(crmalloc(%zu)) = %zu", n, malloc_usable_size(p));
        fill(p, n, 3);
        size_t n2 = n * 2 + 5;
        unsigned char *q = crrealloc(p, n2);
        CHECK(q != NULL, "crrealloc(%zu -> %zu) failed (errno %d)", n, n2, errno);
        check_fill(q, n, 3, "crrealloc'd block");
        q = crrealloc(q, n / 2 + 1);
        CHECK(q != NULL, "shrinking crrealloc failed (errno %d)", errno);
        check_fill(q, n / 2 + 1, 3, "shrunk crrealloc'd block");
        crfree(q);
    }
    errno = 0;
    void *huge = crmalloc(SIZE_MAX);
    CHECK(huge == NULL && errno == ENOMEM, "crmalloc(SIZE_MAX) returned %p (errno %d), expected NULL / ENOMEM", huge,
          errno);
    root->grown = crrealloc(NULL, 64);
    CHECK(root->grown != NULL && in_region(root->grown), "crrealloc(NULL, 64) = %p (errno %d)", (void *)root->grown,
          errno);
    strcpy(root->grown, "grown by crrealloc");
    errno = 0;
    huge = crrealloc(root->grown, SIZE_MAX);
    CHECK(huge == NULL && errno == ENOMEM, "crrealloc(p, SIZE_MAX) returned %p (errno %d), expected NULL / ENOMEM",
          huge, errno);
    CHECK(strcmp(root->grown, "grown by crrealloc") == 0, "a failed crrealloc changed the block");

    /* A crmalloc'd list in the root, checkpointed. */
    for (long i = 0; i < LIST_LEN; i++) {
        struct item *it = crmalloc(sizeof *it);
        CHECK(it != NULL, "crmalloc of an item failed (errno %d)", errno);
        it->n = i;
        snprintf(it->text, sizeof it->text, "crmalloc item %ld", i);
        it->next = root->list;
        root->list = it;
    }
    errno = 0;
    int rc = checkpoint();
    CHECK(rc == 0, "checkpoint() returned %d (errno %d: %s)", rc, errno, last_error());
    WAIT_TO_BE_KILLED();
}

static void api_check(void) {
    struct root *root = get_root(1);
    root_size_check(root);
    CHECK(root->grown && strcmp(root->grown, "grown by crrealloc") == 0, "restored crrealloc'd string is wrong");
    long want = LIST_LEN - 1;
    for (struct item *it = root->list; it; want--) {
        char text[40];
        snprintf(text, sizeof text, "crmalloc item %ld", want);
        CHECK(it->n == want && strcmp(it->text, text) == 0, "restored item %ld is (%ld, \"%s\")", want, it->n,
              it->text);
        struct item *next = it->next;
        crfree(it);
        it = next;
    }
    CHECK(want == -1, "the restored list ended %ld items early", want + 1);
    root->list = NULL;
    root->grown = crrealloc(root->grown, 1 << 20);
    CHECK(root->grown && strcmp(root->grown, "grown by crrealloc") == 0, "crrealloc of a restored block failed");
    crfree(root->grown);
    printf("done\n");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    CHECK(checkpoint && restore && crmalloc && crfree && crrealloc && crthreads_root_get && crthreads_last_error,
          "the crthreads functions are not available (library not loaded)");
    CHECK(argc >= 2, "usage: seed_fail MODE [BLOCKER]");
    const char *mode = argv[1];
    if (strcmp(mode, "unwritable") == 0)
        unwritable();
    else if (strcmp(mode, "recover") == 0)
        recover();
    else if (strcmp(mode, "recovered") == 0)
        recovered();
    else if (strcmp(mode, "api") == 0)
        api();
    else if (strcmp(mode, "api-check") == 0)
        api_check();
    else
        CHECK(0, "bad arguments");
    return 0;
}
