/* hard_children.c: a persistent program that runs other programs. Everything it runs inherits
 * its environment (LD_PRELOAD, CRTHREADS_DIR, and the mark CRTHREADS_OWNER) and must run as a
 * plain program: a volatile heap, no restore, no claim on the checkpoint directory, a normal
 * exit that leaves the parent's checkpoint alone. The helper (hard_helper.c, built in the same
 * link mode) prints how crthreads treated it; the driver (tests/hardening.rs) checks its lines.
 *
 * usage:
 *   hard_children run HELPER WORKDIR
 *       A fresh start: fills the root (a malloc'd array in the region), checkpoints, records the
 *       bytes of the slot files, prints "parent pid=P", then runs, each of which must exit 0:
 *         system("HELPER where system");
 *         popen("cat WORKDIR/text", "r"), reading back the lines it wrote to that file;
 *         popen("HELPER where popen", "r"), printing the helper's line;
 *         system("WORKDIR/script.sh"), a /bin/sh script (set -e) running tr in a command
 *           substitution, "HELPER where script", and test;
 *         system("timeout 5 HELPER where timeout").
 *       Then the slot files must hold exactly the bytes they held before, the root its data,
 *       and malloc must still serve the region. Prints "READY" and waits to be killed.
 *   hard_children check HELPER WORKDIR
 *       The next run: restore() is 1 and the root holds the data; system("HELPER where check")
 *       exits 0. Prints "parent pid=P". Exits 0 (the driver checks that the checkpoint was then
 *       retired).
 *   hard_children background HELPER
 *       A fresh start: fills the root, starts "HELPER wait background" (fork + exec) with its
 *       stdin the read end of a pipe whose write end only this process holds, relays the
 *       helper's line and "parent pid=P helper=H", checkpoints, prints "READY" and waits to be
 *       killed. Descriptor 9 (the
 *       driver's pipe) is passed on to the helper.
 *   hard_children background-check
 *       The next run: restore() is 1 and the root holds the data. Exits 0.
 * For LD_PRELOAD the program is built without -lcrthreads: the crthreads functions are weak.
 */
#include "check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#pragma weak checkpoint
#pragma weak restore
#pragma weak crthreads_root_get

#define REGION_BASE 0x200000000000UL
#define REGION_SIZE (64UL << 30)
#define MAGIC 0x5eedc0de0c0c0007ULL
#define N 100000

static int in_region(const void *p) { return (uintptr_t)p - REGION_BASE < REGION_SIZE; }

struct root {
    unsigned long long magic;
    unsigned long long *data; /* N values */
};

static unsigned long long value(size_t i) { return i * 0x9E3779B97F4A7C15ULL ^ 0x0c0c; }

static struct root *fresh_root(void) {
    CHECK(restore() == 0, "restore() = %d on a fresh start, expected 0", restore());
    struct root *root = crthreads_root_get(sizeof *root);
    CHECK(root != NULL && in_region(root), "crthreads_root_get gave %p (errno %d: %s), expected a block in the region",
          (void *)root, errno, last_error());
    root->data = malloc(N * sizeof *root->data);
    CHECK(root->data != NULL && in_region(root->data), "malloc gave %p, expected a block in the region",
          (void *)root->data);
    for (size_t i = 0; i < N; i++) root->data[i] = value(i);
    root->magic = MAGIC;
    return root;
}

static void check_root(const struct root *root, const char *when) {
    CHECK(root->magic == MAGIC, "%s: the root's magic is %llx", when, root->magic);
    for (size_t i = 0; i < N; i++) CHECK(root->data[i] == value(i), "%s: data[%zu] changed", when, i);
}

static struct root *restored_root(void) {
    int r = restore();
    CHECK(r == 1, "restore() = %d, expected 1: the checkpoint of the killed run should have been restored", r);
    struct root *root = crthreads_root_get(sizeof *root);
    CHECK(root != NULL, "crthreads_root_get failed (errno %d: %s)", errno, last_error());
    check_root(root, "after the restore");
    return root;
}

/* FNV-1a over DIR/name: its length, and the offset and bytes of each of its data extents (the
 * slot files are sparse: holes are skipped, not read), or 0 if it does not exist. */
static unsigned long long file_hash(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        CHECK(errno == ENOENT, "open %s (errno %d)", path, errno);
        return 0;
    }
    struct stat st;
    CHECK(fstat(fd, &st) == 0, "stat %s (errno %d)", path, errno);
    unsigned long long h = 0xcbf29ce484222325ULL ^ (unsigned long long)st.st_size;
    static unsigned char buf[1 << 16];
    off_t at = 0;
    for (;;) {
        off_t data = lseek(fd, at, SEEK_DATA);
        if (data < 0) {
            CHECK(errno == ENXIO, "lseek SEEK_DATA in %s (errno %d)", path, errno);
            break;
        }
        off_t hole = lseek(fd, data, SEEK_HOLE);
        CHECK(hole > data, "lseek SEEK_HOLE in %s (errno %d)", path, errno);
        h = (h ^ (unsigned long long)data) * 0x100000001b3ULL;
        for (off_t off = data; off < hole;) {
            size_t want = (size_t)(hole - off) < sizeof buf ? (size_t)(hole - off) : sizeof buf;
            ssize_t n = pread(fd, buf, want, off);
            CHECK(n > 0, "pread %s at %lld (errno %d)", path, (long long)off, errno);
            for (ssize_t i = 0; i < n; i++) h = (h ^ buf[i]) * 0x100000001b3ULL;
            off += n;
        }
        at = hole;
    }
    close(fd);
    return h;
}

static unsigned long long slots_hash(const char *dir) {
    unsigned long long a = file_hash(dir, "slot-0"), b = file_hash(dir, "slot-1");
    CHECK(a != 0 || b != 0, "no slot file in %s after a checkpoint", dir);
    return a * 31 + b;
}

static void run_ok(const char *cmd) {
    fflush(stdout);
    int st = system(cmd);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "system(\"%s\") returned status %#x (exited %d)", cmd,
          st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void write_file(const char *path, const char *text, mode_t mode) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "create %s (errno %d)", path, errno);
    CHECK(fputs(text, f) >= 0 && fclose(f) == 0, "write %s (errno %d)", path, errno);
    CHECK(chmod(path, mode) == 0, "chmod %s (errno %d)", path, errno);
}

static void run(const char *helper, const char *work) {
    const char *dir = getenv("CRTHREADS_DIR");
    CHECK(dir != NULL, "CRTHREADS_DIR is not set");
    struct root *root = fresh_root();
    CHECK(checkpoint() == 0, "checkpoint() failed (errno %d: %s)", errno, last_error());
    unsigned long long before = slots_hash(dir);
    printf("parent pid=%d\n", (int)getpid());

    char cmd[8192], path[4096];
    snprintf(cmd, sizeof cmd, "'%s' where system", helper);
    run_ok(cmd);

    /* popen of a plain tool, reading back what it prints. */
    const char *text = "first line\nsecond line, a little longer\nthird\n";
    snprintf(path, sizeof path, "%s/text", work);
    write_file(path, text, 0644);
    snprintf(cmd, sizeof cmd, "cat '%s'", path);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "popen(\"%s\") failed (errno %d)", cmd, errno);
    char got[256] = "", line[256];
    while (fgets(line, sizeof line, p) != NULL) strncat(got, line, sizeof got - strlen(got) - 1);
    int st = pclose(p);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "pclose of popen(\"%s\") returned status %#x", cmd, st);
    CHECK(strcmp(got, text) == 0, "popen(\"%s\") read back \"%s\", expected \"%s\"", cmd, got, text);
    printf("popen cat ok\n");

    /* popen of the helper: its line comes through the pipe. */
    snprintf(cmd, sizeof cmd, "'%s' where popen", helper);
    fflush(stdout);
    p = popen(cmd, "r");
    CHECK(p != NULL, "popen(\"%s\") failed (errno %d)", cmd, errno);
    int lines = 0;
    while (fgets(line, sizeof line, p) != NULL) {
        printf("%s", line);
        lines++;
    }
    st = pclose(p);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "pclose of popen(\"%s\") returned status %#x", cmd, st);
    CHECK(lines == 1, "popen(\"%s\") gave %d lines, expected 1", cmd, lines);

    /* A shell script: the shell, a command substitution through tr, the helper, test. */
    char script[8192];
    snprintf(script, sizeof script,
             "#!/bin/sh\n"
             "set -e\n"
             "word=$(echo persistent | tr a-z A-Z)\n"
             "'%s' where script\n"
             "test \"$word\" = PERSISTENT\n"
             "echo \"script ok $word\"\n",
             helper);
    snprintf(path, sizeof path, "%s/script.sh", work);
    write_file(path, script, 0755);
    snprintf(cmd, sizeof cmd, "'%s'", path);
    run_ok(cmd);

    snprintf(cmd, sizeof cmd, "timeout 5 '%s' where timeout", helper);
    run_ok(cmd);

    CHECK(slots_hash(dir) == before, "the slot files in %s changed while the children ran", dir);
    check_root(root, "after the children ran");
    void *q = malloc(5000);
    CHECK(q != NULL && in_region(q), "malloc after the children ran gave %p, outside the region", q);
    free(q);
    printf("children done\n");
    WAIT_TO_BE_KILLED();
}

static void check(const char *helper) {
    restored_root();
    printf("parent pid=%d\n", (int)getpid());
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' where check", helper);
    run_ok(cmd);
    printf("done\n");
}

static void background(const char *helper) {
    fresh_root();
    int hold[2], out[2];
    CHECK(pipe2(hold, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0, "pipe2 (errno %d)", errno);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork (errno %d)", errno);
    if (pid == 0) {
        /* dup2 clears close-on-exec on the copies; descriptor 9 is inherited as it is. */
        if (dup2(hold[0], 0) < 0 || dup2(out[1], 1) < 0) _exit(126);
        execl(helper, helper, "wait", "background", (char *)NULL);
        _exit(127);
    }
    close(hold[0]);
    close(out[1]);
    FILE *from = fdopen(out[0], "r");
    CHECK(from != NULL, "fdopen (errno %d)", errno);
    char line[512];
    CHECK(fgets(line, sizeof line, from) != NULL, "the background helper (pid %d) printed nothing", (int)pid);
    printf("%s", line);
    printf("parent pid=%d helper=%d\n", (int)getpid(), (int)pid);
    /* The helper is running and waits for hold[1] to close, which happens when this process dies. */
    CHECK(checkpoint() == 0, "checkpoint() failed (errno %d: %s)", errno, last_error());
    WAIT_TO_BE_KILLED();
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    CHECK(restore != NULL && checkpoint != NULL && crthreads_root_get != NULL, "crthreads is not loaded");
    CHECK(argc >= 2, "usage: hard_children run|check|background|background-check ...");
    if (strcmp(argv[1], "run") == 0 && argc == 4) {
        run(argv[2], argv[3]);
    } else if (strcmp(argv[1], "check") == 0 && argc == 4) {
        check(argv[2]);
    } else if (strcmp(argv[1], "background") == 0 && argc == 3) {
        background(argv[2]);
    } else if (strcmp(argv[1], "background-check") == 0) {
        restored_root();
        printf("done\n");
    } else {
        fail(__FILE__, __LINE__, "usage", "unknown mode or wrong number of arguments");
    }
    return 0;
}
