/* mprotect_segv.c: a program's own SIGSEGV handling under the mprotect tracker.
 *
 * crthreads installs its SIGSEGV handler when it starts (before main); under
 * CRTHREADS_TRACKER=mprotect every heap write after a checkpoint faults into it. A program that
 * installs its own handler afterwards must see it called for its genuine faults only, exactly
 * as if crthreads were not there.
 *
 * usage: mprotect_segv MODE
 *   chain    Installs handler A with sigaction (SA_SIGINFO, sa_mask {SIGUSR2}) after start-up;
 *            sigaction(SIGSEGV, NULL, &old) reports A. Heap writes after a checkpoint do not
 *            call A. A write to an invalid address calls A once, with that si_addr and
 *            SEGV_MAPERR, SIGUSR2 blocked inside it, and A can write the (write-protected)
 *            heap and siglongjmp out. raise(SIGSEGV) calls A with SI_TKILL. signal() installs
 *            the one-argument handler B and returns A; a fault calls B. sigset() installs C
 *            and returns B. A handler with SA_RESETHAND runs once; sigaction then reports
 *            SIG_DFL. A thread that blocks every signal (pthread_sigmask), and the main thread
 *            after sigprocmask blocking every signal, still write the heap after a checkpoint;
 *            SIGSEGV never shows as blocked. Prints "done" and exits 0.
 *   exit     Installs a handler that _exits with status 42; a fault on an invalid address
 *            after heap writes must end the program with status 42.
 *   default  No handler: heap writes after a checkpoint work; a fault on an invalid address
 *            kills the program with SIGSEGV.
 *   ignore   SIGSEGV ignored (sigaction SIG_IGN, then signal SIG_IGN): heap writes still work;
 *            a fault on an invalid address kills the program with SIGSEGV (the kernel
 *            overrides SIG_IGN for faults).
 *   restored A handler installed, then signal(SIGSEGV, SIG_DFL): heap writes work; a fault
 *            kills the program with SIGSEGV.
 *   kill     No handler: kill(getpid(), SIGSEGV) kills the program with SIGSEGV.
 * Exits 1 with a "FAIL" message on stderr when a check fails.
 */
#include "check.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>

#pragma weak checkpoint

#define BAD ((volatile int *)0x1234)

static sigjmp_buf env;
static volatile sig_atomic_t a_calls, b_calls, c_calls, r_calls, a_code, a_usr2_blocked, a_segv_blocked;
static void *volatile a_addr;
static char *heap;

static void ckpt(void) {
    errno = 0;
    int rc = checkpoint();
    CHECK(rc == 0, "checkpoint() returned %d (errno %d: %s)", rc, errno, last_error());
}

/* Writes one byte in each page of the heap block (each write faults after a checkpoint). */
static void write_heap(char v) {
    for (size_t i = 0; i < 64 * 4096; i += 4096) heap[i] = v;
}

static void handler_a(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    CHECK(sig == SIGSEGV, "handler A got signal %d", sig);
    a_calls++;
    a_addr = si->si_addr;
    a_code = si->si_code;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    a_usr2_blocked = sigismember(&cur, SIGUSR2);
    a_segv_blocked = sigismember(&cur, SIGSEGV);
    heap[4096 * 7 + 1] = 'A'; /* a tracked write inside the program's handler */
    siglongjmp(env, 1);
}

static void handler_b(int sig) {
    CHECK(sig == SIGSEGV, "handler B got signal %d", sig);
    b_calls++;
    siglongjmp(env, 1);
}

static void handler_c(int sig) {
    (void)sig;
    c_calls++;
    siglongjmp(env, 1);
}

static void handler_reset(int sig, siginfo_t *si, void *ctx) {
    (void)sig, (void)si, (void)ctx;
    r_calls++;
    siglongjmp(env, 1);
}

static void handler_exit(int sig) {
    (void)sig;
    _exit(42);
}

static void *blocked_writer(void *arg) {
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    CHECK(pthread_sigmask(SIG_BLOCK, &all, NULL) == 0, "pthread_sigmask");
    write_heap('t');
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    CHECK(!sigismember(&cur, SIGSEGV), "SIGSEGV shows as blocked in the thread");
    CHECK(sigismember(&cur, SIGUSR1), "the rest of the mask was not applied");
    return NULL;
}

/* Faults on an invalid address, expecting the installed handler to siglongjmp back. */
#define FAULT(what)                                                                                \
    do {                                                                                           \
        if (sigsetjmp(env, 1) == 0) {                                                              \
            *BAD = 1;                                                                              \
            fail(__FILE__, __LINE__, what, "the fault returned without the handler jumping out"); \
        }                                                                                          \
    } while (0)

static void chain(void) {
    struct sigaction a = {.sa_sigaction = handler_a, .sa_flags = SA_SIGINFO};
    sigemptyset(&a.sa_mask);
    sigaddset(&a.sa_mask, SIGUSR2);
    CHECK(sigaction(SIGSEGV, &a, NULL) == 0, "sigaction failed (errno %d)", errno);
    struct sigaction old;
    CHECK(sigaction(SIGSEGV, NULL, &old) == 0, "sigaction query failed");
    CHECK(old.sa_sigaction == handler_a && (old.sa_flags & SA_SIGINFO) && sigismember(&old.sa_mask, SIGUSR2),
          "sigaction(SIGSEGV, NULL, &old) reports %p flags %#x, not the program's handler", (void *)old.sa_sigaction,
          old.sa_flags);

    ckpt();
    write_heap('w');
    CHECK(a_calls == 0, "the program's handler ran %d times for tracked heap writes", (int)a_calls);

    ckpt();
    FAULT("*BAD = 1 (handler A)");
    CHECK(a_calls == 1, "handler A ran %d times", (int)a_calls);
    CHECK(a_addr == (void *)BAD && a_code == SEGV_MAPERR, "handler A got si_addr %p si_code %d", a_addr,
          (int)a_code);
    CHECK(a_usr2_blocked == 1, "SIGUSR2 (handler A's sa_mask) was not blocked in the handler");
    CHECK(a_segv_blocked == 0, "SIGSEGV was blocked in the handler");
    CHECK(heap[4096 * 7 + 1] == 'A', "the handler's heap write is lost");
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    CHECK(!sigismember(&cur, SIGUSR2), "siglongjmp did not restore the mask");

    if (sigsetjmp(env, 1) == 0) {
        raise(SIGSEGV);
        CHECK(0, "raise(SIGSEGV) returned without the handler jumping out");
    }
    CHECK(a_calls == 2 && a_code == SI_TKILL, "raise: handler A ran %d times, si_code %d", (int)a_calls,
          (int)a_code);

    void (*prev)(int) = signal(SIGSEGV, handler_b);
    CHECK(prev == (void (*)(int))handler_a, "signal() returned %p, not handler A", (void *)prev);
    ckpt();
    write_heap('x');
    CHECK(b_calls == 0, "handler B ran for tracked heap writes");
    FAULT("*BAD = 1 (handler B)");
    CHECK(b_calls == 1 && a_calls == 2, "B ran %d times, A %d times", (int)b_calls, (int)a_calls);

    prev = sigset(SIGSEGV, handler_c);
    CHECK(prev == handler_b, "sigset() returned %p, not handler B", (void *)prev);
    FAULT("*BAD = 1 (handler C)");
    CHECK(c_calls == 1, "C ran %d times", (int)c_calls);

    struct sigaction r = {.sa_sigaction = handler_reset, .sa_flags = SA_SIGINFO | SA_RESETHAND};
    sigemptyset(&r.sa_mask);
    CHECK(sigaction(SIGSEGV, &r, &old) == 0, "sigaction(SA_RESETHAND) failed");
    CHECK(old.sa_handler == handler_c, "the old disposition is not handler C");
    FAULT("*BAD = 1 (SA_RESETHAND)");
    CHECK(r_calls == 1, "the SA_RESETHAND handler ran %d times", (int)r_calls);
    CHECK(sigaction(SIGSEGV, NULL, &old) == 0 && old.sa_handler == SIG_DFL,
          "after an SA_RESETHAND delivery sigaction reports %p, not SIG_DFL", (void *)old.sa_handler);

    ckpt();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, blocked_writer, NULL) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    ckpt();
    sigset_t all, saved;
    sigfillset(&all);
    CHECK(sigprocmask(SIG_SETMASK, &all, &saved) == 0, "sigprocmask");
    write_heap('m');
    sigprocmask(SIG_BLOCK, NULL, &cur);
    CHECK(!sigismember(&cur, SIGSEGV) && sigismember(&cur, SIGUSR1), "sigprocmask blocked SIGSEGV or not the rest");
    sigprocmask(SIG_SETMASK, &saved, NULL);
    printf("done\n");
}

static void genuine_fault(void) {
    ckpt();
    write_heap('g');
    printf("heap writes ok\n");
    fflush(stdout);
    *BAD = 1;
    CHECK(0, "survived a write to an invalid address");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    CHECK(checkpoint && crthreads_last_error, "the crthreads functions are not available (library not loaded)");
    CHECK(argc == 2, "usage: mprotect_segv chain|exit|default|ignore|restored|kill");
    heap = malloc(64 * 4096);
    CHECK(heap != NULL, "malloc failed");
    write_heap('0');
    const char *mode = argv[1];
    if (strcmp(mode, "chain") == 0) {
        chain();
    } else if (strcmp(mode, "exit") == 0) {
        CHECK(signal(SIGSEGV, handler_exit) != SIG_ERR, "signal failed");
        genuine_fault();
    } else if (strcmp(mode, "default") == 0) {
        genuine_fault();
    } else if (strcmp(mode, "ignore") == 0) {
        struct sigaction ign = {.sa_handler = SIG_IGN};
        CHECK(sigaction(SIGSEGV, &ign, NULL) == 0, "sigaction(SIG_IGN) failed");
        CHECK(signal(SIGSEGV, SIG_IGN) == SIG_IGN, "signal() did not report SIG_IGN");
        genuine_fault();
    } else if (strcmp(mode, "restored") == 0) {
        CHECK(signal(SIGSEGV, handler_b) == SIG_DFL, "the program's first signal() did not report SIG_DFL");
        CHECK(signal(SIGSEGV, SIG_DFL) == handler_b, "signal() did not report handler B");
        genuine_fault();
    } else if (strcmp(mode, "kill") == 0) {
        ckpt();
        write_heap('k');
        printf("heap writes ok\n");
        kill(getpid(), SIGSEGV);
        CHECK(0, "survived kill(getpid(), SIGSEGV)");
    } else {
        CHECK(0, "bad mode %s", mode);
    }
    return 0;
}
