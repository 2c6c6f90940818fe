/* pstate.c: process state changed by the program, for the restore test (tests/c_pstate.rs).
 *
 * main changes its working directory to DIR, its umask to 027, lowers the soft limit on open
 * files to 200, installs a SIGUSR1 handler (SA_SIGINFO | SA_RESTART, SIGUSR2 in its mask),
 * ignores SIGPIPE and blocks SIGUSR2 on its own thread, says `ready` on stderr, then waits in
 * pthread_join for a worker that computes STEPS steps. Afterwards it prints what it sees:
 *   `cwd=<last part of the cwd> umask=<octal> nofile=<soft> usr1=<ok|...> pipe=<ign|...>
 *    mask=<usr2|...> handled=<count>` (raising SIGUSR1 once, which the handler counts).
 * stderr: `start` when main starts (a resumed run does not call main again).
 *
 * usage: pstate DIR STEPS
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static long steps;
static uint64_t total;

static void on_usr1(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    (void)info;
    (void)ctx;
    handled++;
}

static uint64_t mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void *work(void *arg) {
    (void)arg;
    uint64_t v = 1;
    for (long i = 0; i < steps; i++)
        for (int k = 0; k < 100000; k++)
            v = mix(v);
    total = v;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: pstate DIR STEPS\n");
        return 2;
    }
    fprintf(stderr, "start\n");
    steps = atol(argv[2]);
    if (chdir(argv[1]) != 0) {
        perror("chdir");
        return 2;
    }
    umask(027);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 200;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("setrlimit");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    fprintf(stderr, "ready\n");

    pthread_t t;
    if (pthread_create(&t, NULL, work, NULL) != 0)
        return 4;
    pthread_join(t, NULL);

    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        strcpy(cwd, "?");
    const char *base = strrchr(cwd, '/') ? strrchr(cwd, '/') + 1 : cwd;
    mode_t m = umask(0);
    umask(m);
    getrlimit(RLIMIT_NOFILE, &rl);
    struct sigaction cur;
    sigaction(SIGUSR1, NULL, &cur);
    int usr1_ok = cur.sa_sigaction == on_usr1 && (cur.sa_flags & (SA_SIGINFO | SA_RESTART)) == (SA_SIGINFO | SA_RESTART) &&
                  sigismember(&cur.sa_mask, SIGUSR2) == 1;
    sigaction(SIGPIPE, NULL, &cur);
    int pipe_ign = cur.sa_handler == SIG_IGN;
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    int usr2_blocked = sigismember(&now, SIGUSR2) == 1;
    if (usr1_ok)
        raise(SIGUSR1);
    printf("cwd=%s umask=%03o nofile=%ld usr1=%s pipe=%s mask=%s handled=%d total=%" PRIu64 "\n", base, (unsigned)m,
           (long)rl.rlim_cur, usr1_ok ? "ok" : "lost", pipe_ign ? "ign" : "dfl", usr2_blocked ? "usr2" : "none",
           (int)handled, total);
    return 0;
}
