/* sleep.c: sleep, usleep, nanosleep and clock_nanosleep.
 *
 * Checks: the return values of short sleeps (0) and that none ends early (the clock has moved
 * on by at least the time asked for: a lower bound, which holds however loaded the machine);
 * malformed durations (nanosleep: -1 EINVAL; clock_nanosleep returns EINVAL), clocks
 * clock_nanosleep does not take (EINVAL); absolute deadlines already past (0 at once).
 * Interrupted by a handled signal installed without SA_RESTART: nanosleep (-1 EINTR, the
 * remaining time written, not above what was asked but for the timer slack), clock_nanosleep
 * (EINTR, the same), usleep (-1 EINTR),
 * sleep (the unslept seconds, more than 0 and no more than asked). With SA_RESTART nanosleep
 * and clock_nanosleep still end with EINTR (Linux never restarts them).
 */
#include "conform.h"

static long long now_ns(clockid_t c) {
    struct timespec t;
    MUST(clock_gettime(c, &t) == 0);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void section_plain(void) {
    show("sleep_0", "%u", sleep(0));
    rc_errno("usleep_0", usleep(0));
    long long t0 = now_ns(CLOCK_MONOTONIC);
    rc_errno("usleep_5ms", usleep(5000));
    yesno("usleep_not_early", now_ns(CLOCK_MONOTONIC) - t0 >= 5000000LL);

    struct timespec d = {0, 5000000L}, rem = {99, 99};
    t0 = now_ns(CLOCK_MONOTONIC);
    rc_errno("nanosleep_5ms", nanosleep(&d, &rem));
    yesno("nanosleep_not_early", now_ns(CLOCK_MONOTONIC) - t0 >= 5000000LL);
    d = (struct timespec){0, 0};
    rc_errno("nanosleep_0", nanosleep(&d, NULL));
    d = (struct timespec){0, 1000000000L};
    rc_errno("nanosleep_nsec_1e9", nanosleep(&d, NULL));
    d = (struct timespec){0, -1};
    rc_errno("nanosleep_nsec_negative", nanosleep(&d, NULL));
    d = (struct timespec){-1, 0};
    rc_errno("nanosleep_sec_negative", nanosleep(&d, NULL));

    d = (struct timespec){0, 5000000L};
    t0 = now_ns(CLOCK_MONOTONIC);
    rc("clock_nanosleep_monotonic_5ms", clock_nanosleep(CLOCK_MONOTONIC, 0, &d, NULL));
    yesno("clock_nanosleep_monotonic_not_early", now_ns(CLOCK_MONOTONIC) - t0 >= 5000000LL);
    rc("clock_nanosleep_realtime_5ms", clock_nanosleep(CLOCK_REALTIME, 0, &d, NULL));
    struct timespec abs = deadline_ms(CLOCK_MONOTONIC, 5);
    rc("clock_nanosleep_monotonic_abstime", clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL));
    yesno("clock_nanosleep_abstime_not_early", now_ns(CLOCK_MONOTONIC) >= (long long)abs.tv_sec * 1000000000LL + abs.tv_nsec);
    abs = (struct timespec){1, 0};
    rc("clock_nanosleep_monotonic_abstime_past", clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL));
    rc("clock_nanosleep_realtime_abstime_past", clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &abs, NULL));
    d = (struct timespec){0, 1000000000L};
    rc("clock_nanosleep_nsec_1e9", clock_nanosleep(CLOCK_MONOTONIC, 0, &d, NULL));
    d = (struct timespec){0, 1000000L};
    rc("clock_nanosleep_thread_cputime", clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &d, NULL));
    rc("clock_nanosleep_clock_42", clock_nanosleep(42, 0, &d, NULL));
}

static volatile sig_atomic_t signals;

static void on_signal(int sig) {
    (void)sig;
    signals++;
}

enum kind { NANOSLEEP, CLOCK_NANOSLEEP, USLEEP, SLEEP };

static struct {
    enum kind kind;
    atomic_int done;
    int result, err;
    struct timespec rem;
} in;

static void *sleeper(void *arg) {
    (void)arg;
    struct timespec d = {60, 0};
    in.rem = (struct timespec){-1, -1};
    switch (in.kind) {
    case NANOSLEEP: in.result = nanosleep(&d, &in.rem); break;
    case CLOCK_NANOSLEEP: in.result = clock_nanosleep(CLOCK_MONOTONIC, 0, &d, &in.rem); break;
    case USLEEP: in.result = usleep(999999); break;
    case SLEEP: in.result = (int)sleep(60); break;
    }
    in.err = errno;
    atomic_store(&in.done, 1);
    return NULL;
}

static void interrupted(enum kind kind) {
    in.kind = kind;
    atomic_store(&in.done, 0);
    pthread_t t = spawn(sleeper, NULL);
    interrupt_until(t, &in.done, SIGUSR1);
    join(t);
}

/* The remaining time was written: a valid timespec, more than 0 and not above what was asked
 * by more than a second (Linux reports it from the timer's hard expiry, which includes the
 * thread's timer slack, so it may exceed the 60 s asked by that slack). */
static int rem_sane(void) {
    long long ns = (long long)in.rem.tv_sec * 1000000000LL + in.rem.tv_nsec;
    return in.rem.tv_nsec >= 0 && in.rem.tv_nsec < 1000000000L && ns > 0 && ns <= 61000000000LL;
}

static void section_interrupted(void) {
    handle(SIGUSR1, on_signal, 0);
    interrupted(NANOSLEEP);
    errno = in.err;
    rc_errno("nanosleep_interrupted", in.result);
    yesno("nanosleep_interrupted_remaining_written", rem_sane());
    interrupted(CLOCK_NANOSLEEP);
    rc("clock_nanosleep_interrupted", in.result);
    yesno("clock_nanosleep_interrupted_remaining_written", rem_sane());
    interrupted(USLEEP);
    errno = in.err;
    rc_errno("usleep_interrupted", in.result);
    interrupted(SLEEP);
    yesno("sleep_interrupted_returns_unslept_seconds", in.result > 0 && in.result <= 60);

    handle(SIGUSR1, on_signal, 1);
    interrupted(NANOSLEEP);
    errno = in.err;
    rc_errno("nanosleep_interrupted_sa_restart", in.result);
    interrupted(CLOCK_NANOSLEEP);
    rc("clock_nanosleep_interrupted_sa_restart", in.result);
    yesno("sleep_signal_handler_ran", signals > 0);
}

int main(void) {
    section_plain();
    section_interrupted();
    return 0;
}
