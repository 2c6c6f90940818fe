/* hard_start.c: how crthreads starts, or refuses to: configuration errors, files that are not
 * what they should be, and a second instance on a directory in use.
 *
 * usage:
 *   hard_start main
 *       Prints "main reached pid=P", mallocs a block (which must lie in the persistent region
 *       at its default place), and checkpoint() must return 0. Prints "done". The driver
 *       (tests/hardening.rs) runs it where crthreads must refuse to start, and checks that main
 *       was never reached, and where it must start.
 *   hard_start crattr
 *       Under CRTHREADS_AUTO=0 (nothing initialised yet). crinit with attr.capacity = 12345
 *       returns -1 with errno EINVAL and a message naming crattr.capacity and 12345 and no
 *       environment variable; crinit with attr.dir = "" returns -1 / EINVAL naming crattr.dir.
 *       Both messages are also printed as "crinit-error MESSAGE". crthreads stays uninitialised
 *       (restore() is -1), and then crinit(NULL) returns 0 and checkpoint() 0. Prints "done".
 *   hard_start crattr-auto
 *       The same two bad crattrs after crthreads initialised itself when it was loaded: the
 *       same errors (EINVAL naming the field, not EBUSY), after which checkpoint() still
 *       returns 0. Prints "done".
 *   hard_start twice
 *       Fills the root (not yet checkpointed), prints "waiting pid=P", and waits for SIGUSR1
 *       (the driver starts a second instance meanwhile); then checks the root, checkpoints,
 *       prints "READY" and waits to be killed.
 *   hard_start twice-check
 *       The next run: restore() is 1 and the root holds the data. Prints "done".
 * For LD_PRELOAD the program is built without -lcrthreads: the crthreads functions are weak.
 */
#include "check.h"

#include <signal.h>

#pragma weak crinit
#pragma weak checkpoint
#pragma weak restore
#pragma weak crthreads_root_get

#define REGION_BASE 0x200000000000UL
#define REGION_SIZE (64UL << 30)
#define MAGIC 0x5eedc0de0c0c0009ULL
#define N 50000

static int in_region(const void *p) { return (uintptr_t)p - REGION_BASE < REGION_SIZE; }

struct root {
    unsigned long long magic;
    unsigned *data;
};

static unsigned value(unsigned i) { return i * 2654435761u + 17; }

static void main_mode(void) {
    printf("main reached pid=%d\n", (int)getpid());
    void *p = malloc(1000);
    CHECK(p != NULL && in_region(p), "malloc gave %p, expected a block in the persistent region", p);
    free(p);
    CHECK(checkpoint() == 0, "checkpoint() failed (errno %d: %s)", errno, last_error());
    printf("done\n");
}

/* crinit(attr) must fail with -1 / EINVAL and a message naming `field` and containing `value`
 * (if not NULL) and no CRTHREADS_ variable. */
static void expect_einval(struct crattr *attr, const char *field, const char *value, const char *label) {
    errno = 0;
    int r = crinit(attr);
    int e = errno;
    CHECK(r == -1 && e == EINVAL, "%s: crinit returned %d with errno %d (%s), expected -1 with errno EINVAL", label, r,
          e, strerror(e));
    const char *m = last_error();
    printf("crinit-error %s\n", m);
    CHECK(strstr(m, field) != NULL, "%s: crthreads_last_error() = \"%s\" does not name %s", label, m, field);
    CHECK(value == NULL || strstr(m, value) != NULL, "%s: crthreads_last_error() = \"%s\" does not repeat %s", label,
          m, value);
    CHECK(strstr(m, "CRTHREADS_") == NULL,
          "%s: crthreads_last_error() = \"%s\" names an environment variable, but the value came from %s", label, m,
          field);
}

static void bad_crattrs(void) {
    struct crattr a = {0};
    a.capacity = 12345;
    expect_einval(&a, "crattr.capacity", "12345", "attr.capacity = 12345");
    struct crattr b = {0};
    b.dir = "";
    expect_einval(&b, "crattr.dir", NULL, "attr.dir = \"\"");
}

static void crattr_late(void) {
    CHECK(restore() == -1, "restore() = %d before crinit under CRTHREADS_AUTO=0, expected -1", restore());
    bad_crattrs();
    CHECK(restore() == -1, "restore() = %d after the failed crinits: crthreads should still be uninitialised",
          restore());
    int r = crinit(NULL);
    CHECK(r == 0, "crinit(NULL) after the failed ones returned %d (errno %d: %s), expected 0", r, errno, last_error());
    void *p = malloc(1000);
    CHECK(p != NULL && in_region(p), "malloc after crinit gave %p, expected a block in the region", p);
    free(p);
    CHECK(checkpoint() == 0, "checkpoint() failed (errno %d: %s)", errno, last_error());
    printf("done\n");
}

static void crattr_auto(void) {
    CHECK(restore() == 0, "restore() = %d: crthreads should have started fresh when it was loaded", restore());
    bad_crattrs();
    CHECK(checkpoint() == 0, "checkpoint() after the failed crinits failed (errno %d: %s)", errno, last_error());
    printf("done\n");
}

static void twice(void) {
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    CHECK(sigprocmask(SIG_BLOCK, &usr1, NULL) == 0, "sigprocmask (errno %d)", errno);
    CHECK(restore() == 0, "restore() = %d on a fresh start", restore());
    struct root *root = crthreads_root_get(sizeof *root);
    CHECK(root != NULL, "crthreads_root_get failed (errno %d: %s)", errno, last_error());
    root->data = malloc(N * sizeof *root->data);
    CHECK(root->data != NULL, "malloc failed");
    for (unsigned i = 0; i < N; i++) root->data[i] = value(i);
    root->magic = MAGIC;
    printf("waiting pid=%d\n", (int)getpid());
    int sig = 0;
    CHECK(sigwait(&usr1, &sig) == 0 && sig == SIGUSR1, "sigwait failed");
    for (unsigned i = 0; i < N; i++) CHECK(root->data[i] == value(i), "data[%u] changed while waiting", i);
    CHECK(checkpoint() == 0, "checkpoint() failed (errno %d: %s)", errno, last_error());
    WAIT_TO_BE_KILLED();
}

static void twice_check(void) {
    int r = restore();
    CHECK(r == 1, "restore() = %d, expected 1: the first instance's checkpoint", r);
    struct root *root = crthreads_root_get(sizeof *root);
    CHECK(root != NULL && root->magic == MAGIC, "the restored root is %p (errno %d: %s)", (void *)root, errno,
          last_error());
    for (unsigned i = 0; i < N; i++) CHECK(root->data[i] == value(i), "restored data[%u] differs", i);
    printf("done\n");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    CHECK(crinit != NULL && restore != NULL && checkpoint != NULL, "crthreads is not loaded");
    CHECK(argc == 2, "usage: hard_start main|crattr|crattr-auto|twice|twice-check");
    const char *m = argv[1];
    if (strcmp(m, "main") == 0)
        main_mode();
    else if (strcmp(m, "crattr") == 0)
        crattr_late();
    else if (strcmp(m, "crattr-auto") == 0)
        crattr_auto();
    else if (strcmp(m, "twice") == 0)
        twice();
    else if (strcmp(m, "twice-check") == 0)
        twice_check();
    else
        fail(__FILE__, __LINE__, "usage", "unknown mode %s", m);
    return 0;
}
