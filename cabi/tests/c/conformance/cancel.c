/* cancel.c: thread cancellation.
 *
 * Checks: deferred cancellation acts at a cancellation point, not before: the target runs on
 * after pthread_cancel returned until pthread_testcancel, and nothing after it runs; join gives
 * PTHREAD_CANCELED. A thread cancelled in pthread_cond_wait runs its cleanup handler with the
 * mutex held again (an ERRORCHECK mutex unlocks with 0 in the handler), and the mutex is free
 * afterwards. Cancellation points reached while cancelled: nanosleep, read on an empty pipe,
 * sem_wait, pause. pthread_setcancelstate: the old state (ENABLE, then DISABLE), a bad value
 * (EINVAL), a NULL old state (0 on Linux); with cancellation disabled a pending request waits
 * through cancellation points (sem_wait, pthread_testcancel) until it is enabled again; a thread
 * that keeps it disabled and returns gives its own value to join. pthread_setcanceltype: the
 * old type (DEFERRED), a bad value (EINVAL); an asynchronous cancel stops a thread spinning in
 * a loop without calls. A thread cancelling itself is cancelled at its next pthread_testcancel.
 * Cleanup handlers: pthread_cleanup_pop(1) runs the handler, pop(0) does not, pthread_exit runs
 * the remaining ones innermost first, and so does cancellation.
 */
#include "conform.h"

/* A join value: PTHREAD_CANCELED by name, anything else as a number. */
static void show_value(const char *name, void *v) {
    if (v == PTHREAD_CANCELED)
        show(name, "PTHREAD_CANCELED");
    else
        show(name, "%ld", (long)(intptr_t)v);
}

static sem_t ready, go;
static atomic_int requested, reached, after;

static void *deferred(void *arg) {
    (void)arg;
    MUST(sem_post(&ready) == 0);
    while (!atomic_load(&requested)) sched_yield(); /* not a cancellation point */
    atomic_store(&reached, 1);
    pthread_testcancel();
    atomic_store(&after, 1);
    return (void *)1;
}

static void section_deferred(void) {
    pthread_t t = spawn(deferred, NULL);
    sem_wait_must(&ready);
    rc("cancel_deferred", pthread_cancel(t));
    atomic_store(&requested, 1);
    show_value("cancel_deferred_join_value", join(t));
    yesno("cancel_deferred_runs_on_to_cancellation_point", atomic_load(&reached));
    yesno("cancel_deferred_code_after_testcancel_ran", atomic_load(&after));
}

static pthread_mutex_t cm;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int handler_unlock = -1;

static void unlock_in_handler(void *arg) {
    (void)arg;
    handler_unlock = pthread_mutex_unlock(&cm);
}

static void *wait_forever(void *arg) {
    (void)arg;
    MUST(pthread_mutex_lock(&cm) == 0);
    pthread_cleanup_push(unlock_in_handler, NULL);
    MUST(sem_post(&ready) == 0);
    for (;;) pthread_cond_wait(&cv, &cm);
    pthread_cleanup_pop(0);
    return NULL;
}

static void section_condwait(void) {
    pthread_mutexattr_t a;
    MUST(pthread_mutexattr_init(&a) == 0);
    MUST(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK) == 0);
    MUST(pthread_mutex_init(&cm, &a) == 0);
    pthread_t t = spawn(wait_forever, NULL);
    sem_wait_must(&ready);
    MUST(pthread_mutex_lock(&cm) == 0); /* free only once the thread waits */
    rc("cancel_in_cond_wait", pthread_cancel(t));
    MUST(pthread_mutex_unlock(&cm) == 0);
    show_value("cancel_cond_wait_join_value", join(t));
    rc("cancel_cond_wait_handler_unlocks_held_mutex", handler_unlock);
    rc("cancel_cond_wait_mutex_free_after", pthread_mutex_trylock(&cm));
    MUST(pthread_mutex_unlock(&cm) == 0);
}

static void *in_nanosleep(void *arg) {
    (void)arg;
    struct timespec t = {60, 0};
    nanosleep(&t, NULL);
    return (void *)1;
}

static void *in_read(void *arg) {
    char c;
    (void)read(*(int *)arg, &c, 1);
    return (void *)1;
}

static void *in_sem_wait(void *arg) {
    (void)arg;
    sem_t s;
    MUST(sem_init(&s, 0, 0) == 0);
    sem_wait(&s);
    return (void *)1;
}

static void *in_pause(void *arg) {
    (void)arg;
    pause();
    return (void *)1;
}

static void section_points(void) {
    pthread_t t = spawn(in_nanosleep, NULL);
    MUST(pthread_cancel(t) == 0);
    show_value("cancel_in_nanosleep_join_value", join(t));
    int fds[2];
    MUST(pipe(fds) == 0);
    t = spawn(in_read, &fds[0]);
    MUST(pthread_cancel(t) == 0);
    show_value("cancel_in_read_join_value", join(t));
    MUST(close(fds[0]) == 0 && close(fds[1]) == 0);
    t = spawn(in_sem_wait, NULL);
    MUST(pthread_cancel(t) == 0);
    show_value("cancel_in_sem_wait_join_value", join(t));
    t = spawn(in_pause, NULL);
    MUST(pthread_cancel(t) == 0);
    show_value("cancel_in_pause_join_value", join(t));
}

static int old_first = -1, old_second = -1, bad_state = -1, null_old = -1;
static atomic_int survived;

static void *disabled_then_enabled(void *arg) {
    (void)arg;
    MUST(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_first) == 0);
    bad_state = pthread_setcancelstate(42, &old_second);
    MUST(sem_post(&ready) == 0);
    sem_wait_must(&go); /* a cancellation point, reached with a request pending */
    pthread_testcancel();
    atomic_store(&survived, 1);
    MUST(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old_second) == 0);
    pthread_testcancel();
    return (void *)1;
}

static void *disabled_returns(void *arg) {
    (void)arg;
    null_old = pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    MUST(sem_post(&ready) == 0);
    sem_wait_must(&go);
    pthread_testcancel();
    return (void *)5;
}

static const char *state_name(int s) {
    return s == PTHREAD_CANCEL_ENABLE ? "ENABLE" : s == PTHREAD_CANCEL_DISABLE ? "DISABLE" : "?";
}

static void section_state(void) {
    pthread_t t = spawn(disabled_then_enabled, NULL);
    sem_wait_must(&ready);
    MUST(pthread_cancel(t) == 0);
    MUST(sem_post(&go) == 0);
    show_value("cancel_disabled_then_enabled_join_value", join(t));
    show("setcancelstate_old_default", "%s", state_name(old_first));
    show("setcancelstate_old_after_disable", "%s", state_name(old_second));
    rc("setcancelstate_42", bad_state);
    yesno("cancel_disabled_survives_cancellation_points", atomic_load(&survived));

    t = spawn(disabled_returns, NULL);
    sem_wait_must(&ready);
    MUST(pthread_cancel(t) == 0);
    MUST(sem_post(&go) == 0);
    show_value("cancel_disabled_thread_join_value", join(t));
    rc("setcancelstate_null_oldstate", null_old);
}

static volatile int spin_forever = 1;
static int old_type = -1, bad_type = -1;

static void *async_spin(void *arg) {
    (void)arg;
    bad_type = pthread_setcanceltype(42, &old_type);
    MUST(pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old_type) == 0);
    MUST(sem_post(&ready) == 0);
    while (spin_forever) {
    }
    return (void *)1;
}

static void *cancel_self(void *arg) {
    (void)arg;
    MUST(pthread_cancel(pthread_self()) == 0);
    atomic_store(&reached, 2);
    pthread_testcancel();
    return (void *)1;
}

static void section_type(void) {
    pthread_t t = spawn(async_spin, NULL);
    sem_wait_must(&ready);
    MUST(pthread_cancel(t) == 0);
    show_value("cancel_async_spinning_join_value", join(t));
    show("setcanceltype_old_default", "%s", old_type == PTHREAD_CANCEL_DEFERRED ? "DEFERRED" : "ASYNCHRONOUS");
    rc("setcanceltype_42", bad_type);

    t = spawn(cancel_self, NULL);
    show_value("cancel_self_join_value", join(t));
    yesno("cancel_self_runs_on_to_testcancel", atomic_load(&reached) == 2);
}

static char log_buf[64];

static void note(void *arg) {
    char s[8];
    snprintf(s, sizeof s, "%s%d", log_buf[0] ? " " : "", (int)(intptr_t)arg);
    strncat(log_buf, s, sizeof log_buf - strlen(log_buf) - 1);
}

static void *pushes_and_exits(void *arg) {
    (void)arg;
    pthread_cleanup_push(note, (void *)1);
    pthread_cleanup_push(note, (void *)2);
    pthread_cleanup_push(note, (void *)3);
    pthread_cleanup_pop(1); /* runs 3 */
    pthread_cleanup_pop(0); /* 2 is dropped */
    pthread_cleanup_push(note, (void *)4);
    pthread_exit((void *)7); /* runs 4, then 1 */
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    return NULL;
}

static void *pushes_and_waits(void *arg) {
    (void)arg;
    pthread_cleanup_push(note, (void *)1);
    pthread_cleanup_push(note, (void *)2);
    pthread_cleanup_push(note, (void *)3);
    MUST(sem_post(&ready) == 0);
    for (;;) pthread_testcancel();
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    return NULL;
}

static void section_cleanup(void) {
    log_buf[0] = 0;
    show_value("cleanup_pthread_exit_join_value", join(spawn(pushes_and_exits, NULL)));
    show("cleanup_handlers_run_on_pop_and_exit", "%s", log_buf);
    log_buf[0] = 0;
    pthread_t t = spawn(pushes_and_waits, NULL);
    sem_wait_must(&ready);
    MUST(pthread_cancel(t) == 0);
    show_value("cleanup_cancel_join_value", join(t));
    show("cleanup_handlers_run_on_cancel", "%s", log_buf);
}

int main(void) {
    MUST(sem_init(&ready, 0, 0) == 0 && sem_init(&go, 0, 0) == 0);
    section_deferred();
    section_condwait();
    section_points();
    section_state();
    section_type();
    section_cleanup();
    return 0;
}
