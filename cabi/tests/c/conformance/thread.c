/* thread.c: creating, joining, detaching and ending threads.
 *
 * Checks: pthread_self and pthread_equal in and across threads (two live threads differ); the
 * value a thread returns and the value it passes to pthread_exit from a nested call reach
 * pthread_join; a hundred threads each returning their index; joining yourself (EDEADLK);
 * pthread_detach of a running thread, twice (EINVAL), and joining it (EINVAL);
 * pthread_tryjoin_np (EBUSY while the thread runs, which does not use up the join, then the
 * value); pthread_timedjoin_np with a CLOCK_REALTIME deadline and pthread_clockjoin_np with
 * CLOCK_MONOTONIC (ETIMEDOUT while the thread runs, again without using up the join, then the
 * value), and with a clock it does not take (EINVAL).
 * Last, main calls pthread_exit: the other threads keep running, one of them joins the main
 * thread and gets its exit value, prints the last lines, and the process exits with status 0
 * when that thread returns.
 *
 * Not checked, because glibc 2.36 gives no answer to pin: a second thread joining a thread that
 * another is already joining (glibc does not notice, and both free the thread), joining a thread
 * twice (the handle is gone after the first join), and pthread_timedjoin_np with a malformed
 * deadline on a running thread (glibc spins on the EINVAL of the futex call).
 */
#include "conform.h"

static pthread_t main_id;

static void *return_arg(void *arg) { return arg; }

__attribute__((noinline)) static void exit_with(void *value) { pthread_exit(value); }

__attribute__((noinline)) static void call_exit_with(void *value) {
    exit_with(value);
    abort(); /* not reached */
}

static void *exit_nested(void *arg) {
    call_exit_with(arg);
    return (void *)1; /* not reached */
}

struct ids {
    pthread_t seen;
    int equal_self, equal_main;
    sem_t *hold; /* the thread stays alive until this is posted */
};

static void *record_self(void *arg) {
    struct ids *ids = arg;
    ids->seen = pthread_self();
    ids->equal_self = pthread_equal(ids->seen, pthread_self()) != 0;
    ids->equal_main = pthread_equal(ids->seen, main_id) != 0;
    sem_wait_must(ids->hold);
    return NULL;
}

static void *join_self(void *arg) {
    (void)arg;
    return (void *)(intptr_t)pthread_join(pthread_self(), NULL);
}

/* Blocks until *arg (a semaphore) is posted, then returns 77. */
static void *wait_then_77(void *arg) {
    sem_wait_must(arg);
    return (void *)77;
}

static void section_self_equal(void) {
    yesno("self_equal_self", pthread_equal(pthread_self(), pthread_self()) != 0);
    sem_t hold;
    MUST(sem_init(&hold, 0, 0) == 0);
    struct ids one = {.hold = &hold}, two = {.hold = &hold};
    pthread_t t = spawn(record_self, &one);
    pthread_t u = spawn(record_self, &two);
    MUST(sem_post(&hold) == 0 && sem_post(&hold) == 0);
    join(t);
    join(u);
    yesno("thread_self_equals_created_id", pthread_equal(one.seen, t) != 0 && pthread_equal(two.seen, u) != 0);
    yesno("thread_self_equal_self", one.equal_self);
    yesno("thread_self_equals_main", one.equal_main);
    yesno("two_live_threads_equal", pthread_equal(t, u) != 0);
}

static void section_values(void) {
    void *v = NULL;
    pthread_t t = spawn(return_arg, (void *)7);
    rc("join", pthread_join(t, &v));
    show("join_return_value", "%ld", (long)(intptr_t)v);
    t = spawn(exit_nested, (void *)9);
    rc("join_after_nested_exit", pthread_join(t, &v));
    show("join_exit_value", "%ld", (long)(intptr_t)v);
    t = spawn(return_arg, (void *)3);
    rc("join_null_value_pointer", pthread_join(t, NULL));

    enum { N = 100 };
    pthread_t many[N];
    for (long i = 0; i < N; i++) many[i] = spawn(return_arg, (void *)i);
    long sum = 0;
    for (long i = 0; i < N; i++) sum += (long)(intptr_t)join(many[i]);
    show("hundred_threads_sum_of_values", "%ld", sum);
}

static void section_join_errors(void) {
    rc("join_self_main", pthread_join(pthread_self(), NULL));
    rc("join_self_thread", (int)(intptr_t)join(spawn(join_self, NULL)));

    /* The detached thread below still uses it after this function returns. */
    static sem_t release;
    MUST(sem_init(&release, 0, 0) == 0);

    /* Detaching a running thread; it is then not joinable. */
    pthread_t d = spawn(wait_then_77, &release);
    rc("detach_running", pthread_detach(d));
    rc("detach_twice", pthread_detach(d));
    rc("join_detached", pthread_join(d, NULL));
    MUST(sem_post(&release) == 0); /* it ends on its own */
}

static void section_try_timed(void) {
    sem_t release;
    MUST(sem_init(&release, 0, 0) == 0);
    void *v = NULL;

    pthread_t t = spawn(wait_then_77, &release);
    rc("tryjoin_running", pthread_tryjoin_np(t, &v));
    MUST(sem_post(&release) == 0);
    int r;
    while ((r = pthread_tryjoin_np(t, &v)) == EBUSY) sleep_ms(1);
    rc("tryjoin_finished", r);
    show("tryjoin_value", "%ld", (long)(intptr_t)v);

    t = spawn(wait_then_77, &release);
    struct timespec d = deadline_ms(CLOCK_REALTIME, SHORT_MS);
    rc("timedjoin_running_realtime", pthread_timedjoin_np(t, &v, &d));
    struct timespec past = {0, 0};
    rc("timedjoin_running_past_deadline", pthread_timedjoin_np(t, &v, &past));
    d = deadline_ms(CLOCK_MONOTONIC, SHORT_MS);
    rc("clockjoin_running_monotonic", pthread_clockjoin_np(t, &v, CLOCK_MONOTONIC, &d));
    d = deadline_ms(CLOCK_MONOTONIC, SHORT_MS);
    rc("clockjoin_running_cputime_clock", pthread_clockjoin_np(t, &v, CLOCK_PROCESS_CPUTIME_ID, &d));
    MUST(sem_post(&release) == 0);
    d = deadline_ms(CLOCK_MONOTONIC, 60000);
    rc("clockjoin_monotonic_ends", pthread_clockjoin_np(t, &v, CLOCK_MONOTONIC, &d));
    show("clockjoin_value", "%ld", (long)(intptr_t)v);

    t = spawn(wait_then_77, &release);
    MUST(sem_post(&release) == 0);
    d = deadline_ms(CLOCK_REALTIME, 60000);
    v = NULL;
    rc("timedjoin_realtime_ends", pthread_timedjoin_np(t, &v, &d));
    show("timedjoin_value", "%ld", (long)(intptr_t)v);
}

/* Runs on after main's pthread_exit: joins the main thread and prints the last lines. */
static void *outlive_main(void *arg) {
    sem_t *started = arg;
    MUST(sem_post(started) == 0);
    void *v = NULL;
    int r = pthread_join(main_id, &v);
    rc("join_main_after_its_exit", r);
    show("main_exit_value", "%ld", (long)(intptr_t)v);
    yesno("thread_runs_after_main_exit", 1);
    return NULL; /* the last thread: the process exits with status 0 */
}

int main(void) {
    main_id = pthread_self();
    section_self_equal();
    section_values();
    section_join_errors();
    section_try_timed();

    static sem_t started;
    MUST(sem_init(&started, 0, 0) == 0);
    pthread_t t = spawn(outlive_main, &started);
    MUST(pthread_detach(t) == 0);
    sem_wait_must(&started);
    yesno("main_calls_pthread_exit", 1);
    pthread_exit((void *)42);
}
