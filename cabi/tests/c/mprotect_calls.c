/* mprotect_calls.c: system calls writing into write-protected heap pages (CRTHREADS_TRACKER=mprotect).
 *
 * After a checkpoint every heap page is read-only, and a system call writing into one fails
 * with EFAULT unless crthreads opened the page first. Built with _FORTIFY_SOURCE=3, so that
 * glibc's checking variants (__getcwd_chk, __readlink_chk, __read_chk, __poll_chk, ...) are
 * called where the compiler can follow a buffer's size from its allocation.
 *
 * usage:
 *   mprotect_calls first FIXDIR
 *       Fresh start. FIXDIR holds `data` (12345 bytes), `link` -> data, and a directory `d` with
 *       the files `alpha` and `beta`. Every call gets its own page of one heap block; every
 *       input is set up before a checkpoint (the directory stream is opened, not yet read);
 *       then each call, writing into its write-protected page, must succeed with the right
 *       result: fstat, stat, lstat, fstatat, statx, statfs, statvfs, getcwd, readlink,
 *       readlinkat, read, pipe, pipe2, socketpair, getrandom, getentropy, waitpid on a forked
 *       child, wait4, poll revents, select sets, epoll_wait, uname, sysinfo, times, getrusage,
 *       getrlimit, prlimit, clock_gettime (a vDSO clock and a CPU-time clock), gettimeofday,
 *       nanosleep's remaining time (interrupted by SIGALRM), readdir on a DIR opened before the
 *       checkpoint (the DIR is in the heap), getdents64, getsockname, accept, getpeername,
 *       getsockopt, recvmmsg, sigprocmask's and pthread_sigmask's old sets, sigpending,
 *       sigtimedwait, sigaltstack's old stack, ioctl(FIONREAD), ioctl(TIOCGWINSZ) and tcgetattr
 *       on a pseudo-terminal, fcntl(F_GETLK), prctl(PR_GET_NAME), getresuid, getgroups,
 *       sched_getaffinity, getitimer, timerfd_gettime, process_vm_readv, msgrcv, mq_receive,
 *       getxattr. Prints one line per page ("name hex-bytes"), takes a checkpoint and kills
 *       itself with SIGKILL.
 *   mprotect_calls check FIXDIR
 *       The next run: restore() is 1; prints the same lines from the restored pages (the driver
 *       compares them with the first run's) and "done".
 * Exits 1 with a "FAIL" message on stderr when a check fails.
 */
#define _FORTIFY_SOURCE 3
#include "check.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <mqueue.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/times.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <termios.h>
#include <time.h>

#pragma weak checkpoint
#pragma weak restore
#pragma weak crthreads_root_get

#define PAGE 4096
#define MAGIC 0x6d70726f74656374ULL

/* The calls; each owns the page of its index. The size is how many bytes of the page its
 * answer occupies (what is printed and compared). */
enum call {
    C_FSTAT, C_STAT, C_LSTAT, C_FSTATAT, C_STATX, C_STATFS, C_STATVFS, C_GETCWD, C_READLINK, C_READLINKAT,
    C_READ, C_PIPE, C_PIPE2, C_SOCKETPAIR, C_GETRANDOM, C_GETENTROPY, C_WAITPID, C_WAIT4, C_POLL, C_SELECT,
    C_EPOLL, C_UNAME, C_SYSINFO, C_TIMES, C_GETRUSAGE, C_GETRLIMIT, C_PRLIMIT, C_CLOCK_MONO, C_CLOCK_CPU,
    C_GETTIMEOFDAY, C_NANOSLEEP, C_READDIR, C_GETDENTS, C_GETSOCKNAME, C_ACCEPT, C_GETPEERNAME, C_GETSOCKOPT,
    C_RECVMMSG, C_SIGPROCMASK, C_PTHREAD_SIGMASK, C_SIGPENDING, C_SIGTIMEDWAIT, C_SIGALTSTACK, C_FIONREAD,
    C_TIOCGWINSZ, C_TCGETATTR, C_GETLK, C_PRCTL, C_GETRESUID, C_GETGROUPS, C_AFFINITY, C_GETITIMER, C_TIMERFD,
    C_VM_READV, C_MSGRCV, C_MQ_RECEIVE, C_GETXATTR, NCALLS
};

static const struct {
    const char *name;
    size_t size;
} calls[NCALLS] = {
    [C_FSTAT] = {"fstat", sizeof(struct stat)},
    [C_STAT] = {"stat", sizeof(struct stat)},
    [C_LSTAT] = {"lstat", sizeof(struct stat)},
    [C_FSTATAT] = {"fstatat", sizeof(struct stat)},
    [C_STATX] = {"statx", sizeof(struct statx)},
    [C_STATFS] = {"statfs", sizeof(struct statfs)},
    [C_STATVFS] = {"statvfs", sizeof(struct statvfs)},
    [C_GETCWD] = {"getcwd", 512},
    [C_READLINK] = {"readlink", 64},
    [C_READLINKAT] = {"readlinkat", 64},
    [C_READ] = {"read", 1000},
    [C_PIPE] = {"pipe", 8},
    [C_PIPE2] = {"pipe2", 8},
    [C_SOCKETPAIR] = {"socketpair", 8},
    [C_GETRANDOM] = {"getrandom", 64},
    [C_GETENTROPY] = {"getentropy", 64},
    [C_WAITPID] = {"waitpid", 4},
    [C_WAIT4] = {"wait4", 8 + sizeof(struct rusage)},
    [C_POLL] = {"poll", 2 * sizeof(struct pollfd)},
    [C_SELECT] = {"select", sizeof(fd_set)},
    [C_EPOLL] = {"epoll_wait", 4 * sizeof(struct epoll_event)},
    [C_UNAME] = {"uname", sizeof(struct utsname)},
    [C_SYSINFO] = {"sysinfo", sizeof(struct sysinfo)},
    [C_TIMES] = {"times", sizeof(struct tms)},
    [C_GETRUSAGE] = {"getrusage", sizeof(struct rusage)},
    [C_GETRLIMIT] = {"getrlimit", sizeof(struct rlimit)},
    [C_PRLIMIT] = {"prlimit", sizeof(struct rlimit)},
    [C_CLOCK_MONO] = {"clock_gettime_monotonic", sizeof(struct timespec)},
    [C_CLOCK_CPU] = {"clock_gettime_cputime", sizeof(struct timespec)},
    [C_GETTIMEOFDAY] = {"gettimeofday", sizeof(struct timeval)},
    [C_NANOSLEEP] = {"nanosleep", sizeof(struct timespec)},
    [C_READDIR] = {"readdir", 64},
    [C_GETDENTS] = {"getdents64", PAGE},
    [C_GETSOCKNAME] = {"getsockname", 8 + sizeof(struct sockaddr_un)},
    [C_ACCEPT] = {"accept", 8 + sizeof(struct sockaddr_un)},
    [C_GETPEERNAME] = {"getpeername", 8 + sizeof(struct sockaddr_un)},
    [C_GETSOCKOPT] = {"getsockopt", 8},
    [C_RECVMMSG] = {"recvmmsg", 64},
    [C_SIGPROCMASK] = {"sigprocmask", 8},
    [C_PTHREAD_SIGMASK] = {"pthread_sigmask", 8},
    [C_SIGPENDING] = {"sigpending", 8},
    [C_SIGTIMEDWAIT] = {"sigtimedwait", sizeof(siginfo_t)},
    [C_SIGALTSTACK] = {"sigaltstack", sizeof(stack_t)},
    [C_FIONREAD] = {"ioctl_fionread", sizeof(int)},
    [C_TIOCGWINSZ] = {"ioctl_tiocgwinsz", sizeof(struct winsize)},
    [C_TCGETATTR] = {"tcgetattr", sizeof(struct termios)},
    [C_GETLK] = {"fcntl_getlk", sizeof(struct flock)},
    [C_PRCTL] = {"prctl_get_name", 16},
    [C_GETRESUID] = {"getresuid", 3 * sizeof(uid_t)},
    [C_GETGROUPS] = {"getgroups", 256},
    [C_AFFINITY] = {"sched_getaffinity", sizeof(cpu_set_t)},
    [C_GETITIMER] = {"getitimer", sizeof(struct itimerval)},
    [C_TIMERFD] = {"timerfd_gettime", sizeof(struct itimerspec)},
    [C_VM_READV] = {"process_vm_readv", 80},
    [C_MSGRCV] = {"msgrcv", sizeof(long) + 64},
    [C_MQ_RECEIVE] = {"mq_receive", 64 + sizeof(unsigned)},
    [C_GETXATTR] = {"getxattr", 32},
};

struct root {
    unsigned long long magic;
    unsigned char *pages; /* NCALLS pages */
};

static unsigned char *pages;
#define P(c) ((void *)(pages + (size_t)(c) * PAGE))
/* In `first`, the pages through the local pointer `base`, so that the compiler knows the
 * remaining size of the allocation. */
#define B(c) ((void *)(base + (size_t)(c) * PAGE))

/* A length the compiler cannot see: with it, _FORTIFY_SOURCE calls glibc's checking variant. */
static size_t opaque(size_t n) {
    __asm__ volatile("" : "+r"(n));
    return n;
}

static void report(void) {
    for (int c = 0; c < NCALLS; c++) {
        printf("%s ", calls[c].name);
        for (size_t i = 0; i < calls[c].size; i++) printf("%02x", pages[(size_t)c * PAGE + i]);
        printf("\n");
    }
}

static void on_signal(int sig) { (void)sig; }

static void ckpt(void) {
    errno = 0;
    int rc = checkpoint();
    CHECK(rc == 0, "checkpoint() returned %d (errno %d: %s)", rc, errno, last_error());
}

#define OK(expr, name) CHECK((expr), "%s failed (errno %d: %s)", name, errno, strerror(errno))

static void first(const char *fix) {
    CHECK(restore() == 0, "restore() returned %d on a fresh start", restore());
    struct root *r = crthreads_root_get(sizeof *r);
    CHECK(r != NULL, "crthreads_root_get failed (errno %d: %s)", errno, last_error());
    r->magic = MAGIC;
    unsigned char *base = aligned_alloc(PAGE, (size_t)NCALLS * PAGE);
    CHECK(base != NULL, "aligned_alloc failed");
    r->pages = pages = base;
    memset(pages, 0, (size_t)NCALLS * PAGE);
    OK(chdir(fix) == 0, "chdir");

    /* Inputs, all set up before the checkpoint. */
    struct stat want;
    OK(stat("data", &want) == 0, "stat (setup)");
    int data = open("data", O_RDONLY);
    OK(data >= 0, "open data");
    int dirfd = open("d", O_RDONLY | O_DIRECTORY);
    OK(dirfd >= 0, "open d");
    DIR *dir = opendir("d");
    OK(dir != NULL, "opendir");
    int p[2];
    OK(pipe(p) == 0, "pipe (setup)");
    OK(write(p[1], "7 bytes", 7) == 7, "write");
    struct pollfd *pfd = P(C_POLL);
    pfd[0] = (struct pollfd){.fd = p[0], .events = POLLIN};
    pfd[1] = (struct pollfd){.fd = p[1], .events = POLLOUT};
    fd_set *rset = P(C_SELECT);
    FD_SET(p[0], rset);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 77};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0, "epoll_ctl");
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        OK(kids[i] >= 0, "fork");
        if (kids[i] == 0) _exit(40 + i);
    }
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/s", fix);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    OK(bind(lfd, (struct sockaddr *)&sun, sizeof sun) == 0 && listen(lfd, 4) == 0, "bind/listen");
    int cfd = socket(AF_UNIX, SOCK_STREAM, 0);
    OK(connect(cfd, (struct sockaddr *)&sun, sizeof sun) == 0, "connect");
    int dsv[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, dsv) == 0, "socketpair (setup)");
    OK(send(dsv[0], "datagram one", 12, 0) == 12 && send(dsv[0], "datagram two", 12, 0) == 12, "send");
    /* recvmmsg: two headers and their buffers in its page. */
    char *rm = P(C_RECVMMSG);
    struct mmsghdr *mm = (struct mmsghdr *)(rm + 1024);
    struct iovec *mv = (struct iovec *)(rm + 2048);
    for (int i = 0; i < 2; i++) {
        mv[i] = (struct iovec){rm + 32 * i, 32};
        mm[i].msg_hdr.msg_iov = &mv[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    for (int c = C_GETSOCKNAME; c <= C_GETPEERNAME; c++) *(socklen_t *)P(c) = sizeof(struct sockaddr_un);
    ((socklen_t *)P(C_GETSOCKOPT))[1] = sizeof(int);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    OK(sigprocmask(SIG_BLOCK, &usr1, NULL) == 0, "sigprocmask (setup)");
    struct sigaction alrm = {.sa_handler = on_signal};
    OK(sigaction(SIGALRM, &alrm, NULL) == 0, "sigaction(SIGALRM)");
    int master, slave;
    struct winsize ws = {.ws_row = 33, .ws_col = 99};
    OK(openpty(&master, &slave, NULL, NULL, &ws) == 0, "openpty");
    struct flock *lk = P(C_GETLK);
    lk->l_type = F_WRLCK;
    lk->l_whence = SEEK_SET;
    int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {.it_value = {.tv_sec = 100}};
    OK(timerfd_settime(tfd, 0, &its, NULL) == 0, "timerfd_settime");
    static const char remote[] = "process_vm_readv copies these bytes into the protected page";
    struct iovec *local = (struct iovec *)((char *)P(C_VM_READV) + PAGE - 64);
    *local = (struct iovec){P(C_VM_READV), sizeof remote};
    int q = msgget(IPC_PRIVATE, 0600);
    OK(q >= 0, "msgget");
    struct {
        long type;
        char text[16];
    } msg = {5, "sysv message"};
    OK(msgsnd(q, &msg, 12, 0) == 0, "msgsnd");
    char mq_name[64];
    snprintf(mq_name, sizeof mq_name, "/crt-c-%d", (int)getpid());
    struct mq_attr attr = {.mq_maxmsg = 4, .mq_msgsize = 64};
    mqd_t mq = mq_open(mq_name, O_CREAT | O_RDWR, 0600, &attr);
    OK(mq != (mqd_t)-1, "mq_open");
    mq_unlink(mq_name);
    OK(mq_send(mq, "posix message", 13, 3) == 0, "mq_send");
    int xattr = fsetxattr(data, "user.crthreads", "xattr value", 11, 0) == 0;
    if (!xattr) fprintf(stderr, "note: user extended attributes unsupported here (%s)\n", strerror(errno));
    OK(prctl(PR_SET_NAME, "crt-c-calls") == 0, "prctl(PR_SET_NAME)");

    ckpt();

    /* The calls: every out-parameter is in a write-protected page. */
    struct stat *st = P(C_FSTAT);
    OK(fstat(data, st) == 0, "fstat");
    CHECK(st->st_size == 12345 && st->st_ino == want.st_ino, "fstat: size %ld", (long)st->st_size);
    OK(stat("data", P(C_STAT)) == 0, "stat");
    CHECK(((struct stat *)P(C_STAT))->st_size == 12345, "stat: wrong size");
    OK(lstat("link", P(C_LSTAT)) == 0, "lstat");
    CHECK(S_ISLNK(((struct stat *)P(C_LSTAT))->st_mode), "lstat: not a link");
    OK(fstatat(AT_FDCWD, "link", P(C_FSTATAT), 0) == 0, "fstatat");
    CHECK(((struct stat *)P(C_FSTATAT))->st_size == 12345, "fstatat: wrong size");
    OK(statx(AT_FDCWD, "data", 0, STATX_SIZE, P(C_STATX)) == 0, "statx");
    CHECK(((struct statx *)P(C_STATX))->stx_size == 12345, "statx: wrong size");
    OK(statfs(".", P(C_STATFS)) == 0, "statfs");
    OK(statvfs(".", P(C_STATVFS)) == 0, "statvfs");
    CHECK(((struct statvfs *)P(C_STATVFS))->f_bsize > 0, "statvfs: no block size");
    char *cwd = B(C_GETCWD);
    OK(getcwd(cwd, opaque(512)) == cwd, "getcwd");
    char real[PATH_MAX];
    CHECK(realpath(fix, real) != NULL && strcmp(real, cwd) == 0, "getcwd: %s", cwd);
    OK(readlink("link", B(C_READLINK), opaque(64)) == 4, "readlink");
    CHECK(memcmp(P(C_READLINK), "data", 4) == 0, "readlink: %.4s", (char *)P(C_READLINK));
    OK(readlinkat(AT_FDCWD, "link", B(C_READLINKAT), opaque(64)) == 4, "readlinkat");
    OK(read(data, B(C_READ), opaque(1000)) == 1000, "read");
    int *fds = P(C_PIPE);
    OK(pipe(fds) == 0 && fds[0] > 2 && fds[1] > 2, "pipe");
    OK(pipe2(P(C_PIPE2), O_CLOEXEC) == 0, "pipe2");
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, P(C_SOCKETPAIR)) == 0, "socketpair");
    OK(getrandom(P(C_GETRANDOM), 64, 0) == 64, "getrandom");
    OK(getentropy(P(C_GETENTROPY), 64) == 0, "getentropy");
    OK(waitpid(kids[0], P(C_WAITPID), 0) == kids[0], "waitpid");
    int status = *(int *)P(C_WAITPID);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 40, "waitpid: status %#x", status);
    OK(wait4(kids[1], P(C_WAIT4), 0, (struct rusage *)((char *)P(C_WAIT4) + 8)) == kids[1], "wait4");
    CHECK(WEXITSTATUS(*(int *)P(C_WAIT4)) == 41, "wait4: status %#x", *(int *)P(C_WAIT4));
    OK(poll(B(C_POLL), opaque(2), 0) == 2, "poll");
    CHECK(pfd[0].revents == POLLIN && pfd[1].revents == POLLOUT, "poll: revents %#x %#x", pfd[0].revents,
          pfd[1].revents);
    struct timeval zero_tv = {0, 0};
    OK(select(p[0] + 1, rset, NULL, NULL, &zero_tv) == 1 && FD_ISSET(p[0], rset), "select");
    struct epoll_event *evs = P(C_EPOLL);
    OK(epoll_wait(ep, evs, 4, 0) == 1 && evs[0].data.u64 == 77, "epoll_wait");
    OK(uname(P(C_UNAME)) == 0, "uname");
    CHECK(strcmp(((struct utsname *)P(C_UNAME))->sysname, "Linux") == 0, "uname: sysname");
    OK(sysinfo(P(C_SYSINFO)) == 0, "sysinfo");
    OK(times(P(C_TIMES)) != (clock_t)-1, "times");
    OK(getrusage(RUSAGE_SELF, P(C_GETRUSAGE)) == 0, "getrusage");
    OK(getrlimit(RLIMIT_NOFILE, P(C_GETRLIMIT)) == 0, "getrlimit");
    OK(prlimit(0, RLIMIT_NOFILE, NULL, P(C_PRLIMIT)) == 0, "prlimit");
    OK(clock_gettime(CLOCK_MONOTONIC, P(C_CLOCK_MONO)) == 0, "clock_gettime(CLOCK_MONOTONIC)");
    OK(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, P(C_CLOCK_CPU)) == 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    OK(gettimeofday(P(C_GETTIMEOFDAY), NULL) == 0, "gettimeofday");

    /* nanosleep interrupted by SIGALRM from a periodic timer: it writes the remaining time. */
    struct itimerval every = {{0, 20000}, {0, 20000}}, off = {{0, 0}, {0, 0}};
    OK(setitimer(ITIMER_REAL, &every, NULL) == 0, "setitimer");
    struct timespec lng = {60, 0};
    int rc = nanosleep(&lng, P(C_NANOSLEEP));
    int e = errno;
    OK(getitimer(ITIMER_REAL, P(C_GETITIMER)) == 0, "getitimer");
    setitimer(ITIMER_REAL, &off, NULL);
    CHECK(rc == -1 && e == EINTR, "nanosleep returned %d (errno %d: %s), expected EINTR", rc, e, strerror(e));
    CHECK(((struct timespec *)P(C_NANOSLEEP))->tv_sec > 50, "nanosleep: remaining time");

    /* The DIR was malloc'd (in the heap) before the checkpoint and not read yet: libc fills
     * its buffer with an internal getdents64 now. */
    int seen = 0;
    errno = 0;
    for (struct dirent *de; (de = readdir(dir)) != NULL;) {
        if (strcmp(de->d_name, "alpha") == 0 || strcmp(de->d_name, "beta") == 0) {
            strcpy((char *)P(C_READDIR) + 32 * seen, de->d_name);
            seen++;
        }
    }
    CHECK(errno == 0 && seen == 2, "readdir saw %d of alpha and beta (errno %d: %s)", seen, errno, strerror(errno));
    OK(getdents64(dirfd, P(C_GETDENTS), PAGE) > 0, "getdents64");
    CHECK(memmem(P(C_GETDENTS), PAGE, "alpha", 5) && memmem(P(C_GETDENTS), PAGE, "beta", 4), "getdents64: names");

#define SUN(c) ((struct sockaddr *)((char *)P(c) + 8))
    OK(getsockname(lfd, SUN(C_GETSOCKNAME), P(C_GETSOCKNAME)) == 0, "getsockname");
    CHECK(strcmp(((struct sockaddr_un *)SUN(C_GETSOCKNAME))->sun_path, sun.sun_path) == 0, "getsockname: path");
    int afd = accept(lfd, SUN(C_ACCEPT), P(C_ACCEPT));
    OK(afd >= 0, "accept");
    OK(getpeername(cfd, SUN(C_GETPEERNAME), P(C_GETPEERNAME)) == 0, "getpeername");
    socklen_t *so = P(C_GETSOCKOPT);
    OK(getsockopt(cfd, SOL_SOCKET, SO_TYPE, so, so + 1) == 0 && *so == SOCK_STREAM, "getsockopt");
    OK(recvmmsg(dsv[1], mm, 2, MSG_DONTWAIT, NULL) == 2, "recvmmsg");
    CHECK(mm[0].msg_len == 12 && memcmp(rm, "datagram one", 12) == 0 && memcmp(rm + 32, "datagram two", 12) == 0,
          "recvmmsg: contents");

    OK(sigprocmask(SIG_BLOCK, NULL, P(C_SIGPROCMASK)) == 0, "sigprocmask");
    CHECK(sigismember(P(C_SIGPROCMASK), SIGUSR1) == 1, "sigprocmask: SIGUSR1 not in the old set");
    OK(pthread_sigmask(SIG_BLOCK, NULL, P(C_PTHREAD_SIGMASK)) == 0, "pthread_sigmask");
    raise(SIGUSR1);
    OK(sigpending(P(C_SIGPENDING)) == 0 && sigismember(P(C_SIGPENDING), SIGUSR1) == 1, "sigpending");
    struct timespec zero = {0, 0};
    OK(sigtimedwait(&usr1, P(C_SIGTIMEDWAIT), &zero) == SIGUSR1, "sigtimedwait");
    CHECK(((siginfo_t *)P(C_SIGTIMEDWAIT))->si_signo == SIGUSR1, "sigtimedwait: siginfo");
    OK(sigaltstack(NULL, P(C_SIGALTSTACK)) == 0, "sigaltstack");

    OK(ioctl(p[0], FIONREAD, P(C_FIONREAD)) == 0 && *(int *)P(C_FIONREAD) == 7, "ioctl(FIONREAD)");
    OK(ioctl(slave, TIOCGWINSZ, P(C_TIOCGWINSZ)) == 0, "ioctl(TIOCGWINSZ)");
    CHECK(((struct winsize *)P(C_TIOCGWINSZ))->ws_col == 99, "TIOCGWINSZ: columns");
    OK(tcgetattr(slave, P(C_TCGETATTR)) == 0, "tcgetattr");
    OK(fcntl(data, F_GETLK, lk) == 0 && lk->l_type == F_UNLCK, "fcntl(F_GETLK)");
    OK(prctl(PR_GET_NAME, P(C_PRCTL)) == 0 && strcmp(P(C_PRCTL), "crt-c-calls") == 0, "prctl(PR_GET_NAME)");
    uid_t *ids = P(C_GETRESUID);
    OK(getresuid(ids, ids + 1, ids + 2) == 0 && ids[1] == geteuid(), "getresuid");
    OK(getgroups((int)opaque(64), B(C_GETGROUPS)) >= 0, "getgroups");
    OK(sched_getaffinity(0, sizeof(cpu_set_t), P(C_AFFINITY)) == 0, "sched_getaffinity");
    CHECK(CPU_COUNT((cpu_set_t *)P(C_AFFINITY)) > 0, "sched_getaffinity: no CPU");
    OK(timerfd_gettime(tfd, P(C_TIMERFD)) == 0, "timerfd_gettime");
    CHECK(((struct itimerspec *)P(C_TIMERFD))->it_value.tv_sec > 50, "timerfd_gettime: value");
    struct iovec rv = {(void *)remote, sizeof remote};
    OK(process_vm_readv(getpid(), local, 1, &rv, 1, 0) == (ssize_t)sizeof remote, "process_vm_readv");
    CHECK(memcmp(P(C_VM_READV), remote, sizeof remote) == 0, "process_vm_readv: contents");
    OK(msgrcv(q, P(C_MSGRCV), 64, 0, IPC_NOWAIT) == 12, "msgrcv");
    msgctl(q, IPC_RMID, NULL);
    CHECK(memcmp((char *)P(C_MSGRCV) + sizeof(long), "sysv message", 12) == 0, "msgrcv: text");
    unsigned *prio = (unsigned *)((char *)P(C_MQ_RECEIVE) + 64);
    OK(mq_receive(mq, P(C_MQ_RECEIVE), 64, prio) == 13 && *prio == 3, "mq_receive");
    if (xattr) {
        OK(getxattr("data", "user.crthreads", P(C_GETXATTR), 32) == 11, "getxattr");
        CHECK(memcmp(P(C_GETXATTR), "xattr value", 11) == 0, "getxattr: value");
    }

    report();
    ckpt();
    fflush(stdout);
    kill(getpid(), SIGKILL);
}

static void check(void) {
    int rs = restore();
    CHECK(rs == 1, "restore() returned %d, expected 1 (restored)", rs);
    struct root *r = crthreads_root_get(sizeof *r);
    CHECK(r != NULL && r->magic == MAGIC, "the restored root is missing or wrong");
    pages = r->pages;
    report();
    printf("done\n");
}

int main(int argc, char **argv) {
    CHECK(checkpoint && restore && crthreads_root_get && crthreads_last_error,
          "the crthreads functions are not available (library not loaded)");
    CHECK(argc == 3, "usage: mprotect_calls first|check FIXDIR");
    if (strcmp(argv[1], "first") == 0)
        first(argv[2]);
    else if (strcmp(argv[1], "check") == 0)
        check();
    else
        CHECK(0, "bad mode %s", argv[1]);
    return 0;
}
