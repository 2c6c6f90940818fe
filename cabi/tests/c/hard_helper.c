/* hard_helper.c: a program that a persistent program runs (through system, popen, a shell
 * script, timeout, or fork + exec), built in the same link mode as its parent, so that it gets
 * crthreads too and inherits the parent's CRTHREADS_* environment and mark (CRTHREADS_OWNER).
 * It reports how crthreads treated it; the driver (tests/hardening.rs) checks the report.
 *
 * usage:
 *   hard_helper where TAG
 *       Prints one line and exits 0:
 *         helper TAG pid=P owner=O crthreads=C in_region=R restore=S checkpoint=K dir_fds=D
 *       O: the inherited CRTHREADS_OWNER ("-" if unset); C: 1 if the crthreads functions are
 *       there (the helper was preloaded or linked with them); R: 1 if a malloc'd block lies in
 *       the persistent region at its default place (0x200000000000, 64 GiB), which a plain
 *       program's blocks must not; S: restore() (0 in a plain run, which restores nothing);
 *       K: checkpoint() (0 in a plain run, which writes nothing); D: how many of its open
 *       descriptors refer to something inside CRTHREADS_DIR (0: it neither opened nor locked the
 *       parent's checkpoint directory).
 *   hard_helper wait TAG
 *       Prints the same line (stdout is flushed at once), then reads its standard input until
 *       end of file (the parent holds the other end of a pipe: the helper outlives a killed
 *       parent), then writes "helper TAG exiting 0" on descriptor 9 if that is open (the driver
 *       learns from the end of file on its pipe that the helper has exited, exit handlers and
 *       all) and returns 0 from main: a clean exit.
 * For LD_PRELOAD the program is built without -lcrthreads: the crthreads functions are weak.
 */
#include "check.h"

#include <dirent.h>
#include <fcntl.h>

#pragma weak checkpoint
#pragma weak restore

#define REGION_BASE 0x200000000000UL
#define REGION_SIZE (64UL << 30)
#define NOTIFY_FD 9

/* How many open descriptors refer to something inside `dir`. */
static int fds_inside(const char *dir) {
    size_t n = strlen(dir);
    int count = 0;
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL, "opendir /proc/self/fd (errno %d)", errno);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char link[64], target[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len < 0) continue; /* the directory's own descriptor, closed by now */
        target[len] = '\0';
        if (strncmp(target, dir, n) == 0 && (target[n] == '/' || target[n] == '\0')) count++;
    }
    closedir(d);
    return count;
}

static void report(const char *tag) {
    const char *owner = getenv("CRTHREADS_OWNER");
    const char *env_dir = getenv("CRTHREADS_DIR");
    CHECK(env_dir != NULL, "CRTHREADS_DIR was not inherited");
    /* /proc/self/fd shows resolved paths (if the directory does not exist, nothing is in it). */
    char *dir = realpath(env_dir, NULL);
    if (dir == NULL) dir = strdup(env_dir);
    CHECK(dir != NULL, "strdup failed");
    unsigned char *p = malloc(1000);
    CHECK(p != NULL, "malloc failed (errno %d)", errno);
    memset(p, 0x5a, 1000);
    int in_region = (uintptr_t)p - REGION_BASE < REGION_SIZE;
    int have = restore != NULL && checkpoint != NULL;
    int restored = have ? restore() : -2;
    int ckpt = have ? checkpoint() : -2;
    printf("helper %s pid=%d owner=%s crthreads=%d in_region=%d restore=%d checkpoint=%d dir_fds=%d\n", tag,
           (int)getpid(), owner ? owner : "-", have, in_region, restored, ckpt, fds_inside(dir));
    fflush(stdout);
    free(p);
    free(dir);
}

int main(int argc, char **argv) {
    CHECK(argc == 3, "usage: hard_helper where|wait TAG");
    const char *tag = argv[2];
    if (strcmp(argv[1], "where") == 0) {
        report(tag);
        return 0;
    }
    CHECK(strcmp(argv[1], "wait") == 0, "unknown mode %s", argv[1]);
    report(tag);
    char buf[256];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0) break;
        CHECK(n > 0 || errno == EINTR, "read from the parent's pipe (errno %d)", errno);
    }
    if (fcntl(NOTIFY_FD, F_GETFD) != -1) dprintf(NOTIFY_FD, "helper %s exiting 0\n", tag);
    return 0;
}
