/* static_init.c: objects initialised statically, never passed to an init function.
 *
 * Checks: PTHREAD_MUTEX_INITIALIZER (lock, trylock by the owner and by another thread EBUSY,
 * unlock, two threads counting under it); PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP (relock 0,
 * another thread's trylock EBUSY until the last unlock, an extra unlock EPERM);
 * PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP (relock EDEADLK, another thread's unlock EPERM, unlock
 * when unlocked EPERM); PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP (lock, other trylock EBUSY,
 * unlock); PTHREAD_COND_INITIALIZER (its clock is CLOCK_REALTIME: a deadline of "now + 1 s" on
 * CLOCK_MONOTONIC is long past for it, ETIMEDOUT; a signal hand-over with a predicate works);
 * PTHREAD_RWLOCK_INITIALIZER (two read locks, another thread's trywrlock EBUSY, a write lock
 * excludes another thread's tryrdlock) and
 * PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP (the same); PTHREAD_ONCE_INIT (the routine
 * runs once over three calls). Every object is also destroyed (0) at the end.
 */
#include "conform.h"

static pthread_mutex_t plain = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t recursive = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t errorcheck = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_mutex_t adaptive = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_rwlock_t rw_writer = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int mutex_trylock(void *m) {
    int r = pthread_mutex_trylock(m);
    if (r == 0) MUST(pthread_mutex_unlock(m) == 0);
    return r;
}

static int mutex_unlock(void *m) { return pthread_mutex_unlock(m); }

static int rw_trywrlock(void *l) {
    int r = pthread_rwlock_trywrlock(l);
    if (r == 0) MUST(pthread_rwlock_unlock(l) == 0);
    return r;
}

static int rw_tryrdlock(void *l) {
    int r = pthread_rwlock_tryrdlock(l);
    if (r == 0) MUST(pthread_rwlock_unlock(l) == 0);
    return r;
}

static long counter;

static void *count(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        MUST(pthread_mutex_lock(&plain) == 0);
        long v = counter;
        *(volatile long *)&counter = v + 1;
        MUST(pthread_mutex_unlock(&plain) == 0);
    }
    return NULL;
}

static int flag;

static void *set_flag(void *arg) {
    (void)arg;
    MUST(pthread_mutex_lock(&plain) == 0);
    flag = 1;
    MUST(pthread_cond_signal(&cond) == 0);
    MUST(pthread_mutex_unlock(&plain) == 0);
    return NULL;
}

static int once_runs;

static void once_routine(void) { once_runs++; }

static void rwlock_checks(const char *prefix, pthread_rwlock_t *l) {
    char name[96];
#define NAME(check) (snprintf(name, sizeof name, "%s_%s", prefix, check), name)
    rc(NAME("rdlock"), pthread_rwlock_rdlock(l));
    rc(NAME("rdlock_again"), pthread_rwlock_rdlock(l));
    rc(NAME("other_trywrlock_while_read"), in_thread(rw_trywrlock, l));
    rc(NAME("other_tryrdlock_while_read"), in_thread(rw_tryrdlock, l));
    MUST(pthread_rwlock_unlock(l) == 0 && pthread_rwlock_unlock(l) == 0);
    rc(NAME("wrlock"), pthread_rwlock_wrlock(l));
    rc(NAME("other_tryrdlock_while_written"), in_thread(rw_tryrdlock, l));
    rc(NAME("unlock"), pthread_rwlock_unlock(l));
    rc(NAME("other_trywrlock_after_unlock"), in_thread(rw_trywrlock, l));
#undef NAME
}

int main(void) {
    rc("static_mutex_lock", pthread_mutex_lock(&plain));
    rc("static_mutex_trylock_by_owner", pthread_mutex_trylock(&plain));
    rc("static_mutex_other_trylock", in_thread(mutex_trylock, &plain));
    rc("static_mutex_unlock", pthread_mutex_unlock(&plain));
    pthread_t a = spawn(count, NULL), b = spawn(count, NULL);
    join(a);
    join(b);
    show("static_mutex_two_threads_count", "%ld", counter);

    rc("static_recursive_lock", pthread_mutex_lock(&recursive));
    rc("static_recursive_relock", pthread_mutex_lock(&recursive));
    rc("static_recursive_other_trylock_at_depth_2", in_thread(mutex_trylock, &recursive));
    rc("static_recursive_unlock_2", pthread_mutex_unlock(&recursive));
    rc("static_recursive_other_trylock_at_depth_1", in_thread(mutex_trylock, &recursive));
    rc("static_recursive_unlock_1", pthread_mutex_unlock(&recursive));
    rc("static_recursive_unlock_extra", pthread_mutex_unlock(&recursive));
    rc("static_recursive_other_trylock_after", in_thread(mutex_trylock, &recursive));

    rc("static_errorcheck_lock", pthread_mutex_lock(&errorcheck));
    rc("static_errorcheck_relock", pthread_mutex_lock(&errorcheck));
    rc("static_errorcheck_other_unlock", in_thread(mutex_unlock, &errorcheck));
    rc("static_errorcheck_unlock", pthread_mutex_unlock(&errorcheck));
    rc("static_errorcheck_unlock_unlocked", pthread_mutex_unlock(&errorcheck));

    rc("static_adaptive_lock", pthread_mutex_lock(&adaptive));
    rc("static_adaptive_other_trylock", in_thread(mutex_trylock, &adaptive));
    rc("static_adaptive_unlock", pthread_mutex_unlock(&adaptive));

    MUST(pthread_mutex_lock(&plain) == 0);
    struct timespec d = deadline_ms(CLOCK_MONOTONIC, 1000);
    rc("static_cond_timedwait_monotonic_deadline", pthread_cond_timedwait(&cond, &plain, &d));
    d = deadline_ms(CLOCK_REALTIME, SHORT_MS);
    rc("static_cond_timedwait_realtime", pthread_cond_timedwait(&cond, &plain, &d));
    pthread_t t = spawn(set_flag, NULL);
    int r = 0;
    while (!flag && r == 0) r = pthread_cond_wait(&cond, &plain);
    rc("static_cond_wait", r);
    yesno("static_cond_woken_with_flag", flag);
    MUST(pthread_mutex_unlock(&plain) == 0);
    join(t);

    rwlock_checks("static_rwlock", &rw);
    rwlock_checks("static_rwlock_writer_nonrecursive", &rw_writer);

    for (int i = 1; i <= 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "static_once_call_%d", i);
        rc(name, pthread_once(&once, once_routine));
    }
    show("static_once_runs", "%d", once_runs);

    rc("static_mutex_destroy", pthread_mutex_destroy(&plain));
    rc("static_recursive_destroy", pthread_mutex_destroy(&recursive));
    rc("static_errorcheck_destroy", pthread_mutex_destroy(&errorcheck));
    rc("static_adaptive_destroy", pthread_mutex_destroy(&adaptive));
    rc("static_cond_destroy", pthread_cond_destroy(&cond));
    rc("static_rwlock_destroy", pthread_rwlock_destroy(&rw));
    rc("static_rwlock_writer_nonrecursive_destroy", pthread_rwlock_destroy(&rw_writer));
    return 0;
}
