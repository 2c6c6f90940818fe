/* check.h: what every C test program shares: _GNU_SOURCE, the standard headers they all use,
 * checkpoint_restore.h, and the checks. Include it first, before any system header.
 *
 * CHECK(cond, fmt, ...): unless cond holds, prints "FAIL file:line: check `cond` failed: " and the
 * printf-style message on stderr, and exits with status 1 at once (_Exit: no atexit handlers or
 * stdio flushes run). fail() does the same unconditionally. The drivers (tests/c_suite.rs and
 * tests/seed_api.rs) show the program's stderr when it does not exit as expected.
 */
#ifndef CRTHREADS_TEST_CHECK_H
#define CRTHREADS_TEST_CHECK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint_restore.h"

/* Weak, so that the same program also builds without -lcrthreads (for LD_PRELOAD). */
#pragma weak crthreads_last_error

/* Prints the failed check `expr` at file:line with the message, and exits 1. Holds stderr's lock
 * from the start, so that the message of one failing thread is not interleaved with another's. */
__attribute__((noreturn, format(printf, 4, 5))) static inline void fail(const char *file, int line, const char *expr,
                                                                        const char *fmt, ...) {
    va_list ap;
    flockfile(stderr);
    fprintf(stderr, "FAIL %s:%d: check `%s` failed: ", file, line, expr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    _Exit(1);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                 \
    } while (0)

/* crthreads_last_error(), or "(null)" when there is no message. */
static inline const char *last_error(void) {
    const char *m = crthreads_last_error();
    return m ? m : "(null)";
}

/* For the seed programs: prints "READY" (the driver's cue to kill the program with SIGKILL, after
 * the program's last checkpoint) and waits; fails at the caller's line if nobody killed the
 * program within a minute. */
#define WAIT_TO_BE_KILLED() wait_to_be_killed(__FILE__, __LINE__)

__attribute__((noreturn)) static inline void wait_to_be_killed(const char *file, int line) {
    printf("READY\n");
    for (int i = 0; i < 600; i++) usleep(100000);
    fail(file, line, "killed", "nobody killed the program within 60 s");
}

#endif
