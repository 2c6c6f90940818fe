/* seed_crinit.c: what crinit() does, before and after a restore.
 *
 * usage:
 *   seed_crinit auto fresh OTHER STATS
 *       crthreads initialised itself from CRTHREADS_DIR when loaded. Checks: crinit(NULL) returns
 *       0 and restore() 0; crinit with attr.dir equal to CRTHREADS_DIR confirms (0); crinit with
 *       attr.dir = OTHER, with another base and with another capacity each return -1 with errno
 *       EBUSY and a crthreads_last_error() naming the setting (and OTHER is not created); bad
 *       attr values (durability 7, keep 5) return -1 with errno EINVAL and a message naming the
 *       field and the value; after all these failures crinit(NULL) still returns 0; crinit with
 *       durability CR_DURABILITY_SYNC and stats = STATS returns 0. Then it fills the root with
 *       malloc'd data, takes a checkpoint (0), prints "READY" and waits to be killed.
 *   seed_crinit auto restored OTHER KEEP
 *       The next run: crinit(NULL) returns 1 and restore() 1; the root holds the data; crinit
 *       with attr.dir = OTHER still fails with EBUSY and a bad durability with EINVAL. Then
 *       crinit with keep = CR_KEEP (KEEP is "keep": the checkpoint must outlive exit(0)) or
 *       keep = CR_REMOVE (KEEP is "remove": exit(0) must delete it, even under CRTHREADS_KEEP=1)
 *       returns 1. Exits 0.
 *   seed_crinit late fresh DIR OTHER
 *       Run with CRTHREADS_AUTO=0 and CRTHREADS_DIR set to a path that must stay unused. Before
 *       crinit: restore() and checkpoint() return -1 (errno EPERM), crmalloc returns NULL
 *       (EPERM), malloc works. A crinit with attr.dir = DIR and durability 7 returns -1 / EINVAL
 *       and leaves crthreads uninitialised and DIR uncreated; so does a too small capacity.
 *       crinit with attr.dir = DIR returns 0; blocks malloc'd before it keep their contents and
 *       can be realloc'd and freed; a second crinit with the same dir returns 0, with OTHER -1 /
 *       EBUSY. It fills the root, takes a checkpoint (which must create DIR, not CRTHREADS_DIR),
 *       prints "READY" and waits to be killed.
 *   seed_crinit late restored DIR OTHER
 *       The next run, again with CRTHREADS_AUTO=0: the blocks malloc'd before crinit, the
 *       restore from DIR (crinit returns 1, restore() 1, the root holds the data), and those
 *       blocks still intact after the restore replaced the heap. Exits 0.
 * Prints "root 0x..." (the root's address) on stdout. Exits 0 on success, 1 with a message.
 * For LD_PRELOAD the program is built without -lcrthreads: the crthreads functions are weak.
 */
#include "check.h"

#include <sys/stat.h>

#pragma weak crinit
#pragma weak checkpoint
#pragma weak restore
#pragma weak crmalloc
#pragma weak crthreads_root_get

/* crinit(attr) must fail with -1, errno `want`, and a message containing `what` and `what2`. */
static void expect_crinit_fails(struct crattr *attr, int want, const char *what, const char *what2,
                                const char *label) {
    errno = 0;
    int r = crinit(attr);
    int e = errno;
    CHECK(r == -1 && e == want, "%s: crinit returned %d with errno %d (%s), expected -1 with errno %d (%s)", label, r,
          e, strerror(e), want, strerror(want));
    const char *m = last_error();
    CHECK(strcasestr(m, what) != NULL, "%s: crthreads_last_error() = \"%s\" does not name \"%s\"", label, m, what);
    CHECK(what2 == NULL || strstr(m, what2) != NULL, "%s: crthreads_last_error() = \"%s\" does not mention \"%s\"",
          label, m, what2);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

#define MAGIC 0x5eedc0de0c0c0002ULL
#define NUMBERS 5000

struct root {
    unsigned long long magic;
    char *name;     /* strdup'd */
    long *numbers;  /* NUMBERS entries, malloc'd */
    char *early;    /* a copy of a string malloc'd before crinit (late mode) */
};

static void fill_root(struct root *r, const char *early) {
    CHECK(r->magic == 0 && r->name == NULL && r->numbers == NULL, "the root is not zeroed on a fresh start");
    r->magic = MAGIC;
    r->name = strdup("seed_crinit persistent name");
    r->numbers = malloc(NUMBERS * sizeof *r->numbers);
    CHECK(r->name && r->numbers, "malloc failed (errno %d)", errno);
    for (long i = 0; i < NUMBERS; i++) r->numbers[i] = i * i - 7;
    if (early) {
        r->early = strdup(early);
        CHECK(r->early != NULL, "strdup failed");
    }
}

static void check_root(const struct root *r, const char *early) {
    CHECK(r->magic == MAGIC, "restored root has magic %llx, expected %llx", r->magic, MAGIC);
    CHECK(r->name && strcmp(r->name, "seed_crinit persistent name") == 0, "restored name is \"%s\"",
          r->name ? r->name : "(null)");
    for (long i = 0; i < NUMBERS; i++)
        CHECK(r->numbers[i] == i * i - 7, "restored numbers[%ld] = %ld, expected %ld", i, r->numbers[i], i * i - 7);
    if (early)
        CHECK(r->early && strcmp(r->early, early) == 0, "restored copy of the early string is \"%s\"",
              r->early ? r->early : "(null)");
}

static struct root *get_root(void) {
    struct root *r = crthreads_root_get(sizeof *r);
    CHECK(r != NULL, "crthreads_root_get failed (errno %d: %s)", errno, last_error());
    printf("root %p\n", (void *)r);
    return r;
}

static void take_checkpoint_and_wait(void) {
    errno = 0;
    int rc = checkpoint();
    CHECK(rc == 0, "checkpoint() returned %d (errno %d: %s)", rc, errno, last_error());
    WAIT_TO_BE_KILLED();
}

static void auto_mode(int fresh, const char *other, const char *arg) {
    const char *env_dir = getenv("CRTHREADS_DIR");
    CHECK(env_dir != NULL, "CRTHREADS_DIR is not set");
    int want = fresh ? 0 : 1;

    int r = crinit(NULL);
    CHECK(r == want, "crinit(NULL) returned %d (errno %d: %s), expected %d", r, errno, last_error(), want);
    CHECK(restore() == want, "restore() returned %d, expected %d", restore(), want);

    struct crattr a = {0};
    a.dir = env_dir;
    r = crinit(&a);
    CHECK(r == want, "crinit with attr.dir = CRTHREADS_DIR returned %d (errno %d: %s), expected %d", r, errno,
          last_error(), want);

    a = (struct crattr){0};
    a.dir = other;
    expect_crinit_fails(&a, EBUSY, "dir", other, "crinit with another dir");
    CHECK(!exists(other), "the refused directory %s was created", other);
    a = (struct crattr){0};
    a.durability = 7;
    expect_crinit_fails(&a, EINVAL, "durability", "7", "crinit with durability 7");

    if (fresh) {
        a = (struct crattr){0};
        a.base = 0x300000000000UL;
        expect_crinit_fails(&a, EBUSY, "base", NULL, "crinit with another base");
        a = (struct crattr){0};
        a.capacity = (size_t)1 << 30;
        expect_crinit_fails(&a, EBUSY, "capacity", NULL, "crinit with another capacity");
        a = (struct crattr){0};
        a.keep = 5;
        expect_crinit_fails(&a, EINVAL, "keep", "5", "crinit with keep 5");
        r = crinit(NULL);
        CHECK(r == 0, "crinit(NULL) after the failed calls returned %d (errno %d: %s)", r, errno, last_error());
        a = (struct crattr){0};
        a.durability = CR_DURABILITY_SYNC;
        a.stats = arg;
        r = crinit(&a);
        CHECK(r == 0, "crinit with durability sync and stats returned %d (errno %d: %s)", r, errno, last_error());

        fill_root(get_root(), NULL);
        take_checkpoint_and_wait();
    }

    check_root(get_root(), NULL);
    a = (struct crattr){0};
    if (strcmp(arg, "keep") == 0)
        a.keep = CR_KEEP;
    else if (strcmp(arg, "remove") == 0)
        a.keep = CR_REMOVE;
    else
        CHECK(0, "bad KEEP argument %s", arg);
    r = crinit(&a);
    CHECK(r == 1, "crinit with keep = %s returned %d (errno %d: %s), expected 1", arg, r, errno, last_error());
    printf("done\n");
}

static void late_mode(int fresh, const char *dir, const char *other) {
    const char *env_dir = getenv("CRTHREADS_DIR");
    CHECK(env_dir != NULL, "CRTHREADS_DIR is not set");

    /* Blocks from the volatile allocator, before crthreads exists. */
    char *small = malloc(40);
    char *big = malloc(200000);
    char *str = strdup("allocated before crinit");
    CHECK(small && big && str, "malloc before crinit failed (errno %d)", errno);
    for (int i = 0; i < 40; i++) small[i] = (char)(i * 3);
    for (int i = 0; i < 200000; i++) big[i] = (char)(i % 251);

    errno = 0;
    int r = restore();
    CHECK(r == -1 && errno == EPERM, "restore() before crinit returned %d (errno %d), expected -1 / EPERM", r, errno);
    errno = 0;
    r = checkpoint();
    CHECK(r == -1 && errno == EPERM, "checkpoint() before crinit returned %d (errno %d), expected -1 / EPERM", r,
          errno);
    errno = 0;
    void *p = crmalloc(16);
    CHECK(p == NULL && errno == EPERM, "crmalloc(16) before crinit returned %p (errno %d), expected NULL / EPERM", p,
          errno);

    struct crattr a = {0};
    a.dir = dir;
    a.durability = 7;
    expect_crinit_fails(&a, EINVAL, "durability", "7", "first crinit with durability 7");
    a.durability = 0;
    a.capacity = 1 << 20;
    expect_crinit_fails(&a, EINVAL, "capacity", NULL, "first crinit with a 1 MiB capacity");
    errno = 0;
    r = restore();
    CHECK(r == -1 && errno == EPERM, "restore() after failed crinit calls returned %d (errno %d), expected -1 / EPERM",
          r, errno);
    if (fresh) CHECK(!exists(dir), "a failed crinit created %s", dir);

    a = (struct crattr){0};
    a.dir = dir;
    int want = fresh ? 0 : 1;
    r = crinit(&a);
    CHECK(r == want, "crinit with attr.dir returned %d (errno %d: %s), expected %d", r, errno, last_error(), want);
    CHECK(restore() == want, "restore() returned %d after crinit, expected %d", restore(), want);

    /* The early blocks survive initialisation (and, in the restored run, the restore). */
    for (int i = 0; i < 40; i++) CHECK(small[i] == (char)(i * 3), "early small block changed at %d", i);
    for (int i = 0; i < 200000; i++) CHECK(big[i] == (char)(i % 251), "early big block changed at %d", i);
    CHECK(strcmp(str, "allocated before crinit") == 0, "early string changed: \"%s\"", str);
    big = realloc(big, 400000);
    CHECK(big != NULL, "realloc of an early block failed (errno %d)", errno);
    for (int i = 0; i < 200000; i++) CHECK(big[i] == (char)(i % 251), "realloc of an early block lost byte %d", i);
    free(small);
    free(big);

    r = crinit(&a);
    CHECK(r == want, "a second crinit with the same dir returned %d (errno %d: %s)", r, errno, last_error());
    a.dir = other;
    expect_crinit_fails(&a, EBUSY, "dir", other, "a second crinit with another dir");

    struct root *root = get_root();
    if (fresh) {
        fill_root(root, str);
        free(str);
        errno = 0;
        r = checkpoint();
        CHECK(r == 0, "checkpoint() returned %d (errno %d: %s)", r, errno, last_error());
        CHECK(is_dir(dir), "the checkpoint did not create attr.dir %s", dir);
        CHECK(!exists(env_dir), "the checkpoint created CRTHREADS_DIR %s instead of using attr.dir", env_dir);
        take_checkpoint_and_wait();
    }
    check_root(root, str);
    free(str);
    printf("done\n");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    CHECK(crinit && checkpoint && restore && crmalloc && crthreads_root_get && crthreads_last_error,
          "the crthreads functions are not available (library not loaded)");
    CHECK(argc == 5, "usage: seed_crinit auto|late fresh|restored ARG ARG");
    int fresh = strcmp(argv[2], "fresh") == 0;
    CHECK(fresh || strcmp(argv[2], "restored") == 0, "bad second argument %s", argv[2]);
    if (strcmp(argv[1], "auto") == 0)
        auto_mode(fresh, argv[3], argv[4]);
    else if (strcmp(argv[1], "late") == 0)
        late_mode(fresh, argv[3], argv[4]);
    else
        CHECK(0, "bad mode %s", argv[1]);
    return 0;
}
