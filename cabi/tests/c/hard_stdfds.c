/* hard_stdfds.c: a program started with descriptors 0, 1 and 2 closed (a daemon), whose own
 * files then get those numbers. crthreads' descriptors (the checkpoint directory, its lock file,
 * the slot files, the tracker's) must lie at 3 or above and be close-on-exec, so that the
 * program's output never lands in a checkpoint file.
 *
 * The driver (tests/hardening.rs) starts the program with descriptors 0, 1 and 2 closed, its
 * report file on descriptor 8 (used as stdout here) and its message file on descriptor 9 (used
 * as stderr, where failed checks go).
 *
 * usage:
 *   hard_stdfds first OUTDIR
 *       At entry descriptors 0, 1 and 2 must be closed (crthreads claimed the checkpoint
 *       directory before main without taking them). A fresh start: the root gets a malloc'd
 *       block of DATA_LEN bytes filled with generation 1's pattern, and checkpoint() returns 0.
 *       Then descriptors 0-2 must still be closed, at least one descriptor must refer to
 *       something in CRTHREADS_DIR, and every descriptor the program did not open itself must
 *       be close-on-exec. The program opens OUTDIR/a, OUTDIR/b and OUTDIR/c, which must get 0, 1
 *       and 2, writes FILE_LEN bytes of a pattern to each (half before the next checkpoint, half
 *       after), rewrites the block with generation 2's pattern, and checkpoint() returns 0. No
 *       descriptor below 3 may refer to CRTHREADS_DIR, and the close-on-exec check is repeated.
 *       Prints "READY" and waits to be killed.
 *   hard_stdfds check OUTDIR
 *       The next run, started the same way: descriptors 0-2 are closed at entry (the restore
 *       did not take them), restore() is 1, the block holds generation 2's pattern, the
 *       close-on-exec check holds, and OUTDIR/a, b and c (opened again as 0, 1 and 2) hold
 *       exactly what the first run wrote. Exits 0.
 * Each descriptor checked is listed on stdout as "fd N -> TARGET cloexec=C".
 * For LD_PRELOAD the program is built without -lcrthreads: the crthreads functions are weak.
 */
#include "check.h"

#include <dirent.h>
#include <fcntl.h>

#pragma weak checkpoint
#pragma weak restore
#pragma weak crthreads_root_get

#define REPORT_FD 8
#define MESSAGE_FD 9
#define DATA_LEN (8u << 20)
#define FILE_LEN (2u << 20)
#define MAGIC 0x5eedc0de0c0c0008ULL

struct root {
    unsigned long long magic;
    unsigned generation;
    unsigned char *data;
};

static unsigned char data_byte(size_t i, unsigned gen) { return (unsigned char)(i * (2 * gen + 1) + (i >> 12) + gen); }
static unsigned char file_byte(size_t i, int which) { return (unsigned char)('a' + which + i * 7 + (i >> 10)); }

static void fill_data(unsigned char *p, unsigned gen) {
    for (size_t i = 0; i < DATA_LEN; i++) p[i] = data_byte(i, gen);
}

static void check_data(const unsigned char *p, unsigned gen, const char *when) {
    for (size_t i = 0; i < DATA_LEN; i++)
        CHECK(p[i] == data_byte(i, gen), "%s: byte %zu of the block is %u, expected %u (generation %u)", when, i, p[i],
              data_byte(i, gen), gen);
}

static void low_fds_closed(const char *when) {
    for (int fd = 0; fd < 3; fd++) {
        char link[64], target[4096] = "?";
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n >= 0) target[n] = '\0';
        CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF,
              "%s: descriptor %d is open (-> %s); the program never opened it", when, fd, target);
    }
}

static int inside(const char *target, const char *dir) {
    size_t n = strlen(dir);
    return strncmp(target, dir, n) == 0 && (target[n] == '/' || target[n] == '\0');
}

/* Every descriptor other than the program's own (`own` low ones, the report and message
 * descriptors, the listing's) must be close-on-exec; none below 3 may refer to `dir`. Returns
 * how many refer to `dir`. */
static int check_fds(const char *env_dir, int own, const char *when) {
    /* /proc/self/fd shows resolved paths; the directory exists once a checkpoint was taken. */
    char *dir = realpath(env_dir, NULL);
    CHECK(dir != NULL, "%s: realpath %s (errno %d)", when, env_dir, errno);
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL, "opendir /proc/self/fd (errno %d)", errno);
    int listing = dirfd(d), count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd == listing) continue;
        char link[64], target[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        CHECK(n >= 0, "readlink %s (errno %d)", link, errno);
        target[n] = '\0';
        int flags = fcntl(fd, F_GETFD);
        CHECK(flags != -1, "fcntl(%d, F_GETFD) (errno %d)", fd, errno);
        int cloexec = (flags & FD_CLOEXEC) != 0;
        printf("%s: fd %d -> %s cloexec=%d\n", when, fd, target, cloexec);
        if (inside(target, dir)) {
            count++;
            CHECK(fd >= 3, "%s: descriptor %d refers to %s, inside the checkpoint directory", when, fd, target);
        }
        if (fd < own || fd == REPORT_FD || fd == MESSAGE_FD) continue;
        CHECK(cloexec, "%s: descriptor %d (-> %s) is not close-on-exec, yet the program did not open it", when, fd,
              target);
    }
    closedir(d);
    free(dir);
    return count;
}

static const char *names[3] = {"a", "b", "c"};

static void open_files(const char *outdir, int flags) {
    for (int i = 0; i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", outdir, names[i]);
        int fd = open(path, flags, 0600);
        CHECK(fd == i, "open %s gave descriptor %d (errno %d), expected %d: descriptors 0-2 should be free", path, fd,
              errno, i);
    }
}

static void write_files(size_t from, size_t to) {
    static unsigned char buf[1 << 16];
    for (int fd = 0; fd < 3; fd++) {
        for (size_t off = from; off < to; off += sizeof buf) {
            size_t n = to - off < sizeof buf ? to - off : sizeof buf;
            for (size_t i = 0; i < n; i++) buf[i] = file_byte(off + i, fd);
            CHECK(write(fd, buf, n) == (ssize_t)n, "write %zu bytes to descriptor %d (errno %d)", n, fd, errno);
        }
    }
}

static void first(const char *dir, const char *outdir) {
    low_fds_closed("at entry");
    CHECK(restore() == 0, "restore() = %d on a fresh start", restore());
    struct root *root = crthreads_root_get(sizeof *root);
    CHECK(root != NULL, "crthreads_root_get failed (errno %d: %s)", errno, last_error());
    root->data = malloc(DATA_LEN);
    CHECK(root->data != NULL, "malloc failed");
    fill_data(root->data, 1);
    root->generation = 1;
    root->magic = MAGIC;
    CHECK(checkpoint() == 0, "the first checkpoint failed (errno %d: %s)", errno, last_error());
    low_fds_closed("after the first checkpoint");
    int n = check_fds(dir, 0, "after the first checkpoint");
    CHECK(n >= 1, "no descriptor refers to the checkpoint directory %s, yet crthreads holds it", dir);

    open_files(outdir, O_WRONLY | O_CREAT | O_TRUNC);
    write_files(0, FILE_LEN / 2);
    fill_data(root->data, 2);
    root->generation = 2;
    CHECK(checkpoint() == 0, "the second checkpoint failed (errno %d: %s)", errno, last_error());
    write_files(FILE_LEN / 2, FILE_LEN);
    check_fds(dir, 3, "after the second checkpoint");
    WAIT_TO_BE_KILLED();
}

static void check(const char *dir, const char *outdir) {
    low_fds_closed("at entry after the restore");
    int r = restore();
    CHECK(r == 1, "restore() = %d, expected 1", r);
    struct root *root = crthreads_root_get(sizeof *root);
    CHECK(root != NULL && root->magic == MAGIC, "the restored root is %p (errno %d: %s)", (void *)root, errno,
          last_error());
    CHECK(root->generation == 2, "the restored root is of generation %u, expected 2", root->generation);
    check_data(root->data, 2, "after the restore");
    check_fds(dir, 0, "after the restore");

    open_files(outdir, O_RDONLY);
    static unsigned char buf[1 << 16];
    for (int fd = 0; fd < 3; fd++) {
        size_t off = 0;
        for (;;) {
            ssize_t n = read(fd, buf, sizeof buf);
            CHECK(n >= 0, "read %s (errno %d)", names[fd], errno);
            if (n == 0) break;
            for (ssize_t i = 0; i < n; i++)
                CHECK(buf[i] == file_byte(off + (size_t)i, fd), "%s: byte %zu differs from what the first run wrote",
                      names[fd], off + (size_t)i);
            off += (size_t)n;
        }
        CHECK(off == FILE_LEN, "%s holds %zu bytes, the first run wrote %u", names[fd], off, FILE_LEN);
    }
    printf("done\n");
}

int main(int argc, char **argv) {
    /* stdout and stderr are closed: report through the driver's descriptors. */
    FILE *out = fdopen(REPORT_FD, "w"), *err = fdopen(MESSAGE_FD, "w");
    if (out == NULL || err == NULL) return 2;
    setvbuf(out, NULL, _IONBF, 0);
    setvbuf(err, NULL, _IONBF, 0);
    stdout = out;
    stderr = err;
    CHECK(restore != NULL && checkpoint != NULL && crthreads_root_get != NULL, "crthreads is not loaded");
    CHECK(argc == 3, "usage: hard_stdfds first|check OUTDIR");
    const char *dir = getenv("CRTHREADS_DIR");
    CHECK(dir != NULL, "CRTHREADS_DIR is not set");
    if (strcmp(argv[1], "first") == 0)
        first(dir, argv[2]);
    else if (strcmp(argv[1], "check") == 0)
        check(dir, argv[2]);
    else
        fail(__FILE__, __LINE__, "usage", "unknown mode %s", argv[1]);
    return 0;
}
