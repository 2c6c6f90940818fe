/* conform.h: what the pthread conformance programs share. Include it first, before any system
 * header.
 *
 * Each program prints one line per check, `name: value`, and nothing that depends on timing,
 * addresses, thread ids or the machine: error numbers by name (`EBUSY`, `0` for success), yes/no
 * for properties, counts. The driver (tests/pthread_conformance.rs) compares the whole of stdout
 * with the golden file `<program>.expected` next to the source, recorded from glibc. Only the
 * main thread prints, except where a check says otherwise, so the order of lines is fixed.
 *
 * MUST(cond) is for scaffolding, not for the behaviour under test (a thread that cannot be
 * created, a clock that cannot be read): unless cond holds it prints the failed condition on
 * stderr and exits with status 1, so that a broken setup is never mistaken for an observation.
 *
 * Waits use short deadlines (SHORT_MS) only where the outcome is certain whatever the scheduler
 * does (a timed lock on a mutex that nobody releases before the deadline); every hand-over
 * between threads goes through a semaphore, a join or the lock itself, never a sleep.
 */
#ifndef CONFORM_H
#define CONFORM_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A deadline that certainly passes while nobody can release what is waited for. */
#define SHORT_MS 20

__attribute__((noreturn)) static inline void must_fail(const char *file, int line, const char *expr) {
    flockfile(stderr);
    fprintf(stderr, "FAIL %s:%d: scaffolding `%s` failed (errno %d)\n", file, line, expr, errno);
    _Exit(1);
}

#define MUST(cond)                                                                                 \
    do {                                                                                           \
        if (!(cond)) must_fail(__FILE__, __LINE__, #cond);                                         \
    } while (0)

/* Line-buffered stdout: a program that dies half-way still shows the checks it made. */
__attribute__((constructor)) static void conform_line_buffered(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

/* The name of an error number the pthread functions may return; "0" for success. */
static inline const char *ename(int e) {
    static char other[32];
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case EDEADLK: return "EDEADLK";
    case ENOSYS: return "ENOSYS";
    case ENOTSUP: return "ENOTSUP";
    case EOVERFLOW: return "EOVERFLOW";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EOWNERDEAD: return "EOWNERDEAD";
    case ENOTRECOVERABLE: return "ENOTRECOVERABLE";
    default: snprintf(other, sizeof other, "errno-%d", e); return other;
    }
}

/* `name: value`, value printf-formatted. */
__attribute__((format(printf, 2, 3))) static inline void show(const char *name, const char *fmt, ...) {
    va_list ap;
    printf("%s: ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* A pthread-style result (an error number, 0 for success). */
static inline void rc(const char *name, int r) { show(name, "%s", ename(r)); }

/* A -1/errno result: "0", or "-1 <errno>" (any other value is printed as it is). Call it right
 * after the call, before anything can change errno. */
static inline void rc_errno(const char *name, int r) {
    if (r == -1)
        show(name, "-1 %s", ename(errno));
    else
        show(name, "%d", r);
}

static inline void yesno(const char *name, int cond) { show(name, "%s", cond ? "yes" : "no"); }

/* now + ms on `clock`, as an absolute deadline. */
static inline struct timespec deadline_ms(clockid_t clock, long ms) {
    struct timespec t;
    MUST(clock_gettime(clock, &t) == 0);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static inline void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) == -1 && errno == EINTR) {
    }
}

static inline pthread_t spawn(void *(*fn)(void *), void *arg) {
    pthread_t t;
    int r = pthread_create(&t, NULL, fn, arg);
    errno = r;
    MUST(r == 0);
    return t;
}

static inline void *join(pthread_t t) {
    void *v;
    int r = pthread_join(t, &v);
    errno = r;
    MUST(r == 0);
    return v;
}

/* Runs fn(arg) in a new thread and returns what it returned (for "from another thread"). */
struct conform_call {
    int (*fn)(void *);
    void *arg;
    int result;
};

static void *conform_call_main(void *p) {
    struct conform_call *c = p;
    c->result = c->fn(c->arg);
    return NULL;
}

static inline int in_thread(int (*fn)(void *), void *arg) {
    struct conform_call c = {fn, arg, -1};
    join(spawn(conform_call_main, &c));
    return c.result;
}

static inline void sem_wait_must(sem_t *s) {
    int r;
    while ((r = sem_wait(s)) == -1 && errno == EINTR) {
    }
    MUST(r == 0);
}

/* Installs `handler` for `sig`, with or without SA_RESTART. */
static inline void handle(int sig, void (*handler)(int), int restart) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigemptyset(&sa.sa_mask);
    MUST(sigaction(sig, &sa, NULL) == 0);
}

/* Sends `sig` to `t` every millisecond until *done: a thread blocked in a call is interrupted
 * whether it entered the call before or after the first signal. `t` sets *done just before it
 * returns, so the last signal may find it gone: what pthread_kill returns is not looked at. */
static inline void interrupt_until(pthread_t t, atomic_int *done, int sig) {
    while (!atomic_load(done)) {
        (void)pthread_kill(t, sig);
        sleep_ms(1);
    }
}

#endif
