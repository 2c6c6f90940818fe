/* cond.c: condition variables and their attributes.
 *
 * Checks: condattr defaults (CLOCK_REALTIME, PRIVATE), setclock with CLOCK_MONOTONIC (read back),
 * with clocks a condition variable cannot use (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID)
 * and with a bad value (EINVAL), setpshared (read back, bad value EINVAL); signal and broadcast
 * without waiters (0); timedwait until the deadline (ETIMEDOUT, the mutex held again on return:
 * an ERRORCHECK mutex unlocks with 0), without holding the ERRORCHECK mutex (EPERM), with a
 * deadline already past (ETIMEDOUT) and with a malformed one (EINVAL); the clock the deadline is read on: a CLOCK_MONOTONIC condition
 * variable given a deadline in the distant past of CLOCK_MONOTONIC times out at once, and one
 * given "now" on CLOCK_REALTIME (which is decades ahead on CLOCK_MONOTONIC) waits for the signal
 * and returns 0; a default (CLOCK_REALTIME) condition variable given "now + 1 s" on
 * CLOCK_MONOTONIC (decades ago on CLOCK_REALTIME) times out at once; pthread_cond_clockwait with
 * CLOCK_MONOTONIC and CLOCK_REALTIME deadlines (ETIMEDOUT, whatever the attribute says) and with
 * a clock it does not take (EINVAL).
 * Wake-ups: a producer and a consumer pass 2000 values through a one-slot buffer with two
 * condition variables (every value arrives once, in order: nothing is lost); ping-pong between
 * two threads 2000 times with signal; 8 waiters released by one broadcast all wake (a
 * generation counter as the predicate); 8 consumers take 4000 tokens posted one signal each by
 * the main thread, and every token is taken once (no lost wake-up leaves tokens behind).
 */
#include "conform.h"

static const char *clock_name(clockid_t c) {
    return c == CLOCK_REALTIME ? "CLOCK_REALTIME" : c == CLOCK_MONOTONIC ? "CLOCK_MONOTONIC" : "?";
}

static void section_attr(void) {
    pthread_condattr_t a;
    rc("condattr_init", pthread_condattr_init(&a));
    clockid_t c;
    MUST(pthread_condattr_getclock(&a, &c) == 0);
    show("condattr_default_clock", "%s", clock_name(c));
    rc("condattr_setclock_monotonic", pthread_condattr_setclock(&a, CLOCK_MONOTONIC));
    MUST(pthread_condattr_getclock(&a, &c) == 0);
    show("condattr_clock_read_back", "%s", clock_name(c));
    rc("condattr_setclock_process_cputime", pthread_condattr_setclock(&a, CLOCK_PROCESS_CPUTIME_ID));
    rc("condattr_setclock_thread_cputime", pthread_condattr_setclock(&a, CLOCK_THREAD_CPUTIME_ID));
    rc("condattr_setclock_42", pthread_condattr_setclock(&a, 42));
    MUST(pthread_condattr_getclock(&a, &c) == 0);
    show("condattr_clock_after_bad_setclock", "%s", clock_name(c));
    rc("condattr_setclock_realtime", pthread_condattr_setclock(&a, CLOCK_REALTIME));
    int v;
    MUST(pthread_condattr_getpshared(&a, &v) == 0);
    show("condattr_default_pshared", "%s", v == PTHREAD_PROCESS_PRIVATE ? "PRIVATE" : "SHARED");
    rc("condattr_setpshared_shared", pthread_condattr_setpshared(&a, PTHREAD_PROCESS_SHARED));
    MUST(pthread_condattr_getpshared(&a, &v) == 0);
    show("condattr_pshared_read_back", "%s", v == PTHREAD_PROCESS_PRIVATE ? "PRIVATE" : "SHARED");
    rc("condattr_setpshared_42", pthread_condattr_setpshared(&a, 42));
    pthread_cond_t cv;
    rc("cond_init_pshared", pthread_cond_init(&cv, &a));
    rc("cond_destroy_pshared", pthread_cond_destroy(&cv));
    rc("condattr_destroy", pthread_condattr_destroy(&a));
}

static pthread_mutex_t errorcheck_mutex(void) {
    pthread_mutexattr_t a;
    pthread_mutex_t m;
    MUST(pthread_mutexattr_init(&a) == 0);
    MUST(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK) == 0);
    MUST(pthread_mutex_init(&m, &a) == 0);
    MUST(pthread_mutexattr_destroy(&a) == 0);
    return m;
}

static void cond_with_clock(pthread_cond_t *cv, clockid_t clock) {
    pthread_condattr_t a;
    MUST(pthread_condattr_init(&a) == 0);
    MUST(pthread_condattr_setclock(&a, clock) == 0);
    MUST(pthread_cond_init(cv, &a) == 0);
    MUST(pthread_condattr_destroy(&a) == 0);
}

/* Locks m, waits with the deadline (on cv's clock), reports the result and whether the mutex is
 * held again (an errorcheck mutex unlocks with 0 only for its owner). */
static void timed(const char *name, pthread_cond_t *cv, pthread_mutex_t *m, struct timespec d) {
    MUST(pthread_mutex_lock(m) == 0);
    rc(name, pthread_cond_timedwait(cv, m, &d));
    MUST(pthread_mutex_unlock(m) == 0);
}

static void clockwait(const char *name, pthread_cond_t *cv, pthread_mutex_t *m, clockid_t c, struct timespec d) {
    MUST(pthread_mutex_lock(m) == 0);
    rc(name, pthread_cond_clockwait(cv, m, c, &d));
    MUST(pthread_mutex_unlock(m) == 0);
}

/* Sets *flag under the mutex and signals: it can take the mutex only once the waiter waits. */
struct waker {
    pthread_mutex_t *m;
    pthread_cond_t *cv;
    int flag;
};

static void *wake(void *arg) {
    struct waker *w = arg;
    MUST(pthread_mutex_lock(w->m) == 0);
    w->flag = 1;
    MUST(pthread_cond_signal(w->cv) == 0);
    MUST(pthread_mutex_unlock(w->m) == 0);
    return NULL;
}

static void section_timed(void) {
    pthread_mutex_t m = errorcheck_mutex();
    pthread_cond_t cv;
    MUST(pthread_cond_init(&cv, NULL) == 0);
    rc("cond_signal_no_waiters", pthread_cond_signal(&cv));
    rc("cond_broadcast_no_waiters", pthread_cond_broadcast(&cv));

    MUST(pthread_mutex_lock(&m) == 0);
    struct timespec d = deadline_ms(CLOCK_REALTIME, SHORT_MS);
    rc("cond_timedwait_realtime", pthread_cond_timedwait(&cv, &m, &d));
    rc("cond_timedwait_returns_with_mutex_held", pthread_mutex_unlock(&m));
    d = deadline_ms(CLOCK_REALTIME, SHORT_MS);
    rc("cond_timedwait_errorcheck_mutex_not_held", pthread_cond_timedwait(&cv, &m, &d));
    timed("cond_timedwait_past_deadline", &cv, &m, (struct timespec){1, 0});
    struct timespec bad = deadline_ms(CLOCK_REALTIME, 1000);
    bad.tv_nsec = 1000000000L;
    timed("cond_timedwait_bad_nsec", &cv, &m, bad);
    bad.tv_nsec = -1;
    timed("cond_timedwait_negative_nsec", &cv, &m, bad);
    /* A monotonic "now + 1 s" is decades in CLOCK_REALTIME's past. */
    timed("cond_realtime_given_monotonic_deadline", &cv, &m, deadline_ms(CLOCK_MONOTONIC, 1000));
    clockwait("cond_clockwait_monotonic", &cv, &m, CLOCK_MONOTONIC, deadline_ms(CLOCK_MONOTONIC, SHORT_MS));
    clockwait("cond_clockwait_realtime", &cv, &m, CLOCK_REALTIME, deadline_ms(CLOCK_REALTIME, SHORT_MS));
    clockwait("cond_clockwait_cputime_clock", &cv, &m, CLOCK_PROCESS_CPUTIME_ID, deadline_ms(CLOCK_MONOTONIC, 1));
    MUST(pthread_cond_destroy(&cv) == 0);

    cond_with_clock(&cv, CLOCK_MONOTONIC);
    timed("cond_monotonic_timedwait", &cv, &m, deadline_ms(CLOCK_MONOTONIC, SHORT_MS));
    timed("cond_monotonic_past_deadline", &cv, &m, (struct timespec){1, 0});
    clockwait("cond_monotonic_clockwait_realtime", &cv, &m, CLOCK_REALTIME, deadline_ms(CLOCK_REALTIME, SHORT_MS));

    /* Given CLOCK_REALTIME's "now", a CLOCK_MONOTONIC wait lasts until the signal. */
    struct waker w = {&m, &cv, 0};
    MUST(pthread_mutex_lock(&m) == 0);
    struct timespec far = deadline_ms(CLOCK_REALTIME, 0);
    pthread_t t = spawn(wake, &w);
    int r = 0;
    while (!w.flag && r == 0) r = pthread_cond_timedwait(&cv, &m, &far);
    rc("cond_monotonic_given_realtime_now_waits_for_signal", r);
    yesno("cond_monotonic_woken_by_signal", w.flag);
    MUST(pthread_mutex_unlock(&m) == 0);
    join(t);
    rc("cond_destroy", pthread_cond_destroy(&cv));
    MUST(pthread_mutex_destroy(&m) == 0);
}

/* One-slot buffer: the producer waits for "empty", the consumer for "full". */
static struct {
    pthread_mutex_t m;
    pthread_cond_t empty, full;
    int has, value;
} slot = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

enum { ITEMS = 2000 };

static void *produce(void *arg) {
    (void)arg;
    for (int i = 1; i <= ITEMS; i++) {
        MUST(pthread_mutex_lock(&slot.m) == 0);
        while (slot.has) MUST(pthread_cond_wait(&slot.empty, &slot.m) == 0);
        slot.value = i;
        slot.has = 1;
        MUST(pthread_cond_signal(&slot.full) == 0);
        MUST(pthread_mutex_unlock(&slot.m) == 0);
    }
    return NULL;
}

static void section_slot(void) {
    pthread_t t = spawn(produce, NULL);
    long sum = 0;
    int in_order = 1;
    for (int i = 1; i <= ITEMS; i++) {
        MUST(pthread_mutex_lock(&slot.m) == 0);
        while (!slot.has) MUST(pthread_cond_wait(&slot.full, &slot.m) == 0);
        in_order &= slot.value == i;
        sum += slot.value;
        slot.has = 0;
        MUST(pthread_cond_signal(&slot.empty) == 0);
        MUST(pthread_mutex_unlock(&slot.m) == 0);
    }
    join(t);
    show("cond_one_slot_sum", "%ld", sum);
    yesno("cond_one_slot_in_order", in_order);
}

static struct {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int turn; /* 0: ping's turn, 1: pong's */
    int rounds;
} pp = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void *pong(void *arg) {
    (void)arg;
    for (int i = 0; i < ITEMS; i++) {
        MUST(pthread_mutex_lock(&pp.m) == 0);
        while (pp.turn != 1) MUST(pthread_cond_wait(&pp.cv, &pp.m) == 0);
        pp.turn = 0;
        pp.rounds++;
        MUST(pthread_cond_signal(&pp.cv) == 0);
        MUST(pthread_mutex_unlock(&pp.m) == 0);
    }
    return NULL;
}

static void section_ping_pong(void) {
    pthread_t t = spawn(pong, NULL);
    for (int i = 0; i < ITEMS; i++) {
        MUST(pthread_mutex_lock(&pp.m) == 0);
        while (pp.turn != 0) MUST(pthread_cond_wait(&pp.cv, &pp.m) == 0);
        pp.turn = 1;
        MUST(pthread_cond_signal(&pp.cv) == 0);
        MUST(pthread_mutex_unlock(&pp.m) == 0);
    }
    join(t);
    show("cond_ping_pong_rounds", "%d", pp.rounds);
}

enum { WAITERS = 8, TOKENS = 4000 };

static struct {
    pthread_mutex_t m;
    pthread_cond_t cv, ready;
    int generation, waiting, woken;
    int tokens, taken, closed;
    int per_thread[WAITERS];
} many = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, {0}};

static void *await_broadcast(void *arg) {
    (void)arg;
    MUST(pthread_mutex_lock(&many.m) == 0);
    int g = many.generation;
    many.waiting++;
    MUST(pthread_cond_signal(&many.ready) == 0);
    while (many.generation == g) MUST(pthread_cond_wait(&many.cv, &many.m) == 0);
    many.woken++;
    MUST(pthread_mutex_unlock(&many.m) == 0);
    return NULL;
}

static void *consume(void *arg) {
    int me = (int)(intptr_t)arg;
    MUST(pthread_mutex_lock(&many.m) == 0);
    for (;;) {
        while (many.tokens == 0 && !many.closed) MUST(pthread_cond_wait(&many.cv, &many.m) == 0);
        if (many.tokens == 0) break;
        many.tokens--;
        many.taken++;
        many.per_thread[me]++;
    }
    MUST(pthread_mutex_unlock(&many.m) == 0);
    return NULL;
}

static void section_many(void) {
    pthread_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++) t[i] = spawn(await_broadcast, NULL);
    MUST(pthread_mutex_lock(&many.m) == 0);
    while (many.waiting < WAITERS) MUST(pthread_cond_wait(&many.ready, &many.m) == 0);
    many.generation++;
    rc("cond_broadcast_to_waiters", pthread_cond_broadcast(&many.cv));
    MUST(pthread_mutex_unlock(&many.m) == 0);
    for (int i = 0; i < WAITERS; i++) join(t[i]);
    show("cond_broadcast_woke", "%d of %d", many.woken, WAITERS);

    for (int i = 0; i < WAITERS; i++) t[i] = spawn(consume, (void *)(intptr_t)i);
    for (int i = 0; i < TOKENS; i++) {
        MUST(pthread_mutex_lock(&many.m) == 0);
        many.tokens++;
        MUST(pthread_cond_signal(&many.cv) == 0);
        MUST(pthread_mutex_unlock(&many.m) == 0);
        if (i % 64 == 0) sched_yield();
    }
    MUST(pthread_mutex_lock(&many.m) == 0);
    many.closed = 1;
    MUST(pthread_cond_broadcast(&many.cv) == 0);
    MUST(pthread_mutex_unlock(&many.m) == 0);
    int sum = 0;
    for (int i = 0; i < WAITERS; i++) {
        join(t[i]);
        sum += many.per_thread[i];
    }
    show("cond_tokens_taken", "%d of %d (threads' own counts add up to %d)", many.taken, TOKENS, sum);
    show("cond_tokens_left", "%d", many.tokens);
}

int main(void) {
    section_attr();
    section_timed();
    section_slot();
    section_ping_pong();
    section_many();
    return 0;
}
