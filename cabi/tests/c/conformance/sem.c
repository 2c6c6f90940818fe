/* sem.c: unnamed POSIX semaphores.
 *
 * Checks: sem_init (0) and sem_getvalue; sem_trywait on zero (-1 EAGAIN) and on a positive value
 * (0, the value drops); sem_post raises it; sem_init above SEM_VALUE_MAX (-1 EINVAL); sem_post
 * at SEM_VALUE_MAX (-1 EOVERFLOW, the value unchanged); sem_timedwait on zero with a
 * CLOCK_REALTIME deadline and with one long past (-1 ETIMEDOUT), with a malformed deadline
 * (-1 EINVAL, also when the semaphore could be taken at once: glibc checks first, and the value
 * stays for the next sem_trywait); sem_clockwait
 * with CLOCK_MONOTONIC (-1 ETIMEDOUT) and a clock it does not take (-1 EINVAL); a deadline far
 * ahead is met by a post from another thread (0); 10000 posts by one thread are each taken
 * once by another; four waiters blocked at once are each released by one post; sem_wait
 * interrupted by a handled signal installed without SA_RESTART (-1 EINTR), and with SA_RESTART
 * it goes on waiting until the post (0); sem_init with pshared 1 (0); sem_destroy (0).
 */
#include "conform.h"

#include <limits.h>

static sem_t s;

static void show_value(const char *name) {
    int v = -1;
    MUST(sem_getvalue(&s, &v) == 0);
    show(name, "%d", v);
}

static void *post_once(void *arg) {
    (void)arg;
    MUST(sem_post(&s) == 0);
    return NULL;
}

enum { POSTS = 10000, WAITERS = 4 };

static void *poster(void *arg) {
    (void)arg;
    for (int i = 0; i < POSTS; i++) MUST(sem_post(&s) == 0);
    return NULL;
}

static sem_t gate;
static atomic_int released;

static void *waiter(void *arg) {
    (void)arg;
    sem_wait_must(&gate);
    atomic_fetch_add(&released, 1);
    return NULL;
}

static volatile sig_atomic_t signals;

static void on_signal(int sig) {
    (void)sig;
    signals++;
}

static sem_t never;
static atomic_int interrupted_done;
static int interrupted_result, interrupted_errno;

static void *wait_interrupted(void *arg) {
    (void)arg;
    interrupted_result = sem_wait(&never);
    interrupted_errno = errno;
    atomic_store(&interrupted_done, 1);
    return NULL;
}

static void section_basics(void) {
    rc_errno("sem_init_0", sem_init(&s, 0, 0));
    show_value("sem_getvalue_initial");
    rc_errno("sem_trywait_zero", sem_trywait(&s));
    rc_errno("sem_post", sem_post(&s));
    show_value("sem_getvalue_after_post");
    rc_errno("sem_trywait_one", sem_trywait(&s));
    show_value("sem_getvalue_after_trywait");
    MUST(sem_post(&s) == 0 && sem_post(&s) == 0);
    rc_errno("sem_wait_two", sem_wait(&s));
    show_value("sem_getvalue_after_wait");
    rc_errno("sem_destroy", sem_destroy(&s));

    rc_errno("sem_init_above_max", sem_init(&s, 0, (unsigned)SEM_VALUE_MAX + 1u));
    rc_errno("sem_init_max", sem_init(&s, 0, SEM_VALUE_MAX));
    rc_errno("sem_post_at_max", sem_post(&s));
    int v;
    MUST(sem_getvalue(&s, &v) == 0);
    yesno("sem_value_still_max", v == SEM_VALUE_MAX);
    MUST(sem_destroy(&s) == 0);

    rc_errno("sem_init_pshared", sem_init(&s, 1, 1));
    rc_errno("sem_pshared_trywait", sem_trywait(&s));
    rc_errno("sem_pshared_trywait_zero", sem_trywait(&s));
    MUST(sem_destroy(&s) == 0);
}

static void section_timed(void) {
    MUST(sem_init(&s, 0, 0) == 0);
    struct timespec d = deadline_ms(CLOCK_REALTIME, SHORT_MS);
    rc_errno("sem_timedwait_realtime", sem_timedwait(&s, &d));
    struct timespec past = {1, 0};
    rc_errno("sem_timedwait_past_deadline", sem_timedwait(&s, &past));
    struct timespec bad = deadline_ms(CLOCK_REALTIME, 1000);
    bad.tv_nsec = 1000000000L;
    rc_errno("sem_timedwait_bad_nsec", sem_timedwait(&s, &bad));
    MUST(sem_post(&s) == 0);
    rc_errno("sem_timedwait_bad_nsec_available", sem_timedwait(&s, &bad));
    rc_errno("sem_trywait_after_bad_nsec_available", sem_trywait(&s));
    d = deadline_ms(CLOCK_MONOTONIC, SHORT_MS);
    rc_errno("sem_clockwait_monotonic", sem_clockwait(&s, CLOCK_MONOTONIC, &d));
    d = deadline_ms(CLOCK_MONOTONIC, SHORT_MS);
    rc_errno("sem_clockwait_cputime_clock", sem_clockwait(&s, CLOCK_PROCESS_CPUTIME_ID, &d));

    pthread_t t = spawn(post_once, NULL);
    d = deadline_ms(CLOCK_REALTIME, 60000);
    rc_errno("sem_timedwait_posted", sem_timedwait(&s, &d));
    join(t);
    t = spawn(post_once, NULL);
    d = deadline_ms(CLOCK_MONOTONIC, 60000);
    rc_errno("sem_clockwait_posted", sem_clockwait(&s, CLOCK_MONOTONIC, &d));
    join(t);
    MUST(sem_destroy(&s) == 0);
}

static void section_threads(void) {
    MUST(sem_init(&s, 0, 0) == 0);
    pthread_t t = spawn(poster, NULL);
    int taken = 0;
    for (int i = 0; i < POSTS; i++) taken += sem_wait(&s) == 0;
    join(t);
    show("sem_posts_taken", "%d of %d", taken, POSTS);
    show_value("sem_value_after_all_taken");
    MUST(sem_destroy(&s) == 0);

    MUST(sem_init(&gate, 0, 0) == 0);
    pthread_t w[WAITERS];
    for (int i = 0; i < WAITERS; i++) w[i] = spawn(waiter, NULL);
    for (int i = 0; i < WAITERS; i++) MUST(sem_post(&gate) == 0);
    for (int i = 0; i < WAITERS; i++) join(w[i]);
    show("sem_waiters_released", "%d of %d", atomic_load(&released), WAITERS);
    MUST(sem_destroy(&gate) == 0);
}

static void section_signals(void) {
    MUST(sem_init(&never, 0, 0) == 0);
    handle(SIGUSR1, on_signal, 0);
    pthread_t t = spawn(wait_interrupted, NULL);
    interrupt_until(t, &interrupted_done, SIGUSR1);
    join(t);
    errno = interrupted_errno;
    rc_errno("sem_wait_interrupted", interrupted_result);

    /* With SA_RESTART: signals land while it waits (five at least, a millisecond apart), then the
     * post ends the wait. */
    handle(SIGUSR1, on_signal, 1);
    atomic_store(&interrupted_done, 0);
    signals = 0;
    t = spawn(wait_interrupted, NULL);
    while (signals < 5 && !atomic_load(&interrupted_done)) {
        (void)pthread_kill(t, SIGUSR1);
        sleep_ms(1);
    }
    MUST(sem_post(&never) == 0);
    join(t);
    errno = interrupted_errno;
    rc_errno("sem_wait_sa_restart", interrupted_result);
    MUST(sem_destroy(&never) == 0);
}

int main(void) {
    section_basics();
    section_timed();
    section_threads();
    section_signals();
    return 0;
}
