/* static_exe.c: a statically linked program (libc and libcrthreads.a linked in).
 *
 * In a static executable crthreads' interposed libc functions have no next definition to call
 * (dlsym finds nothing). Those that are a system call must fall back to it; the others must
 * stop the program with a message that names the function and says that crthreads needs a
 * dynamically linked program. The driver runs this program with CRTHREADS_AUTO=0.
 *
 * usage:
 *   static_exe calls FILE   read, pread, readv, fstat, stat, lstat, fstatat, getcwd, readlink,
 *                           pipe, poll, waitpid on a forked child, clock_gettime, uname,
 *                           sigaction (installing a handler that then runs), signal,
 *                           sigprocmask and nanosleep work; prints "done".
 *   static_exe fread FILE   fread, which has no system call to fall back to: the program stops.
 * Exits 1 with a "FAIL" message on stderr when a check fails.
 */
#include "check.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>

static volatile sig_atomic_t got;

static void on_usr1(int sig) { got = sig; }

#define OK(expr, name) CHECK((expr), "%s failed (errno %d: %s)", name, errno, strerror(errno))

static void calls(const char *path) {
    char buf[64];
    int fd = open(path, O_RDONLY);
    OK(fd >= 0, "open");
    OK(read(fd, buf, 5) == 5 && memcmp(buf, "hello", 5) == 0, "read");
    OK(pread(fd, buf, 5, 6) == 5 && memcmp(buf, "world", 5) == 0, "pread");
    struct iovec v = {buf, 3};
    OK(lseek(fd, 0, SEEK_SET) == 0 && readv(fd, &v, 1) == 3, "readv");
    struct stat st;
    OK(fstat(fd, &st) == 0 && st.st_size == 11, "fstat");
    OK(stat(path, &st) == 0 && st.st_size == 11, "stat");
    OK(lstat(path, &st) == 0 && S_ISREG(st.st_mode), "lstat");
    OK(fstatat(AT_FDCWD, path, &st, 0) == 0 && st.st_size == 11, "fstatat");
    OK(getcwd(buf, sizeof buf) == buf, "getcwd");
    OK(readlink("/proc/self/exe", buf, sizeof buf) > 0, "readlink");
    int p[2];
    OK(pipe(p) == 0 && write(p[1], "x", 1) == 1, "pipe");
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    OK(poll(&pfd, 1, 0) == 1 && pfd.revents == POLLIN, "poll");
    pid_t kid = fork();
    OK(kid >= 0, "fork");
    if (kid == 0) _exit(7);
    int status;
    OK(waitpid(kid, &status, 0) == kid && WEXITSTATUS(status) == 7, "waitpid");
    struct timespec ts;
    OK(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0, "clock_gettime");
    struct utsname u;
    OK(uname(&u) == 0 && strcmp(u.sysname, "Linux") == 0, "uname");
    struct sigaction sa = {.sa_handler = on_usr1};
    OK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    raise(SIGUSR1);
    CHECK(got == SIGUSR1, "the handler installed with sigaction did not run");
    OK(signal(SIGUSR1, SIG_DFL) == on_usr1, "signal");
    sigset_t s, old;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    OK(sigprocmask(SIG_BLOCK, &s, &old) == 0 && sigprocmask(SIG_SETMASK, &old, NULL) == 0, "sigprocmask");
    struct timespec short_nap = {0, 1000};
    OK(nanosleep(&short_nap, NULL) == 0, "nanosleep");
    printf("done\n");
}

int main(int argc, char **argv) {
    CHECK(argc == 3, "usage: static_exe calls|fread FILE");
    if (strcmp(argv[1], "calls") == 0) {
        calls(argv[2]);
    } else if (strcmp(argv[1], "fread") == 0) {
        FILE *f = fopen(argv[2], "r");
        CHECK(f != NULL, "fopen failed");
        char buf[8];
        size_t n = fread(buf, 1, sizeof buf, f);
        printf("fread returned %zu\n", n);
    } else {
        CHECK(0, "bad mode %s", argv[1]);
    }
    return 0;
}
