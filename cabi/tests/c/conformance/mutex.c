/* mutex.c: the four mutex types, the mutex attributes, priority inheritance, robust mutexes and
 * mutexes shared between processes.
 *
 * For each type (NORMAL, RECURSIVE, ERRORCHECK, and DEFAULT from a fresh attribute), lines
 * `mutex_<type>_<check>`: lock; trylock by the owner (EBUSY, or 0 for RECURSIVE); relock by the
 * owner (ERRORCHECK: EDEADLK, RECURSIVE: 0); timedlock by the owner (NORMAL: ETIMEDOUT at the
 * deadline, ERRORCHECK: EDEADLK, RECURSIVE: 0); from another thread while held: trylock
 * (EBUSY), timedlock with a CLOCK_REALTIME deadline and clocklock with CLOCK_MONOTONIC
 * (ETIMEDOUT), unlock (EPERM for ERRORCHECK and RECURSIVE); unlock; unlock when not locked
 * (EPERM for ERRORCHECK and RECURSIVE); another thread's trylock after the unlock (0); timedlock
 * of a free mutex with a deadline long past (0); clocklock with a clock it does not take
 * (EINVAL) and, while another thread holds the mutex, timedlock with a malformed deadline
 * (EINVAL); two threads counting under the lock lose no increment. Self-deadlocks and unlocks by
 * a non-owner that POSIX leaves undefined (NORMAL, DEFAULT) are not made.
 * RECURSIVE counts: three locks need three unlocks (another thread's trylock is EBUSY until the
 * last), a fourth unlock is EPERM. pthread_mutex_destroy of a locked mutex: EBUSY (glibc's
 * answer where POSIX leaves it undefined), of an unlocked one: 0.
 * Attributes: the default of each; settype, setpshared, setrobust and setprotocol with every
 * valid value (read back) and with bad values (EINVAL); setprioceiling in and out of SCHED_FIFO's
 * range. PRIO_INHERIT mutexes lock, time out and report EDEADLK/EPERM like the others.
 * Robust mutexes: the owner thread ends holding the lock: the next lock and trylock report
 * EOWNERDEAD; pthread_mutex_consistent makes the mutex usable again; without it, unlocking
 * leaves it ENOTRECOVERABLE; consistent on a healthy or a non-robust mutex is EINVAL.
 * PROCESS_SHARED, in MAP_SHARED memory across fork: the child's trylock of the parent's locked
 * mutex is EBUSY, both count under the lock without losing an increment, and a robust shared
 * mutex left locked by a child that exits reports EOWNERDEAD to the parent.
 */
#include "conform.h"

#include <sys/mman.h>
#include <sys/wait.h>

enum op { TRYLOCK, TIMEDLOCK_RT, CLOCKLOCK_MONO, TIMEDLOCK_BAD_NSEC, UNLOCK, LOCK_AND_LEAVE };

struct other {
    pthread_mutex_t *m;
    enum op op;
};

/* Runs one operation on the mutex from the calling (other) thread; a successful acquisition is
 * released again, except by LOCK_AND_LEAVE. */
static int do_op(void *arg) {
    struct other *o = arg;
    struct timespec d;
    int r;
    switch (o->op) {
    case TRYLOCK: r = pthread_mutex_trylock(o->m); break;
    case TIMEDLOCK_RT:
        d = deadline_ms(CLOCK_REALTIME, SHORT_MS);
        r = pthread_mutex_timedlock(o->m, &d);
        break;
    case CLOCKLOCK_MONO:
        d = deadline_ms(CLOCK_MONOTONIC, SHORT_MS);
        r = pthread_mutex_clocklock(o->m, CLOCK_MONOTONIC, &d);
        break;
    case TIMEDLOCK_BAD_NSEC:
        d = deadline_ms(CLOCK_REALTIME, 1000);
        d.tv_nsec = 1000000000L;
        r = pthread_mutex_timedlock(o->m, &d);
        break;
    case UNLOCK: return pthread_mutex_unlock(o->m);
    case LOCK_AND_LEAVE: return pthread_mutex_lock(o->m);
    default: abort();
    }
    if (r == 0) MUST(pthread_mutex_unlock(o->m) == 0);
    return r;
}

static int other(pthread_mutex_t *m, enum op op) {
    struct other o = {m, op};
    return in_thread(do_op, &o);
}

struct counting {
    pthread_mutex_t *m;
    long *counter;
};

static void *count(void *arg) {
    struct counting *c = arg;
    for (int i = 0; i < 20000; i++) {
        MUST(pthread_mutex_lock(c->m) == 0);
        long v = *c->counter;
        *(volatile long *)c->counter = v + 1;
        MUST(pthread_mutex_unlock(c->m) == 0);
    }
    return NULL;
}

static long count_two(pthread_mutex_t *m) {
    long counter = 0;
    struct counting c = {m, &counter};
    pthread_t a = spawn(count, &c), b = spawn(count, &c);
    join(a);
    join(b);
    return counter;
}

static char line[128];

static const char *key(const char *prefix, const char *check) {
    snprintf(line, sizeof line, "%s_%s", prefix, check);
    return line;
}

/* `kind` is -1 for the type of a fresh attribute (DEFAULT). */
static void one_type(const char *prefix, int kind) {
    pthread_mutexattr_t a;
    MUST(pthread_mutexattr_init(&a) == 0);
    if (kind >= 0) MUST(pthread_mutexattr_settype(&a, kind) == 0);
    int type;
    MUST(pthread_mutexattr_gettype(&a, &type) == 0);
    pthread_mutex_t m;
    rc(key(prefix, "init"), pthread_mutex_init(&m, &a));
    MUST(pthread_mutexattr_destroy(&a) == 0);
    int recursive = type == PTHREAD_MUTEX_RECURSIVE, errorcheck = type == PTHREAD_MUTEX_ERRORCHECK;

    rc(key(prefix, "lock"), pthread_mutex_lock(&m));
    int r = pthread_mutex_trylock(&m);
    rc(key(prefix, "trylock_by_owner"), r);
    if (r == 0) MUST(pthread_mutex_unlock(&m) == 0);
    if (recursive || errorcheck) {
        r = pthread_mutex_lock(&m);
        rc(key(prefix, "relock_by_owner"), r);
        if (r == 0) MUST(pthread_mutex_unlock(&m) == 0);
    }
    if (kind >= 0) { /* for DEFAULT a self-deadlock is undefined */
        struct timespec d = deadline_ms(CLOCK_REALTIME, SHORT_MS);
        r = pthread_mutex_timedlock(&m, &d);
        rc(key(prefix, "timedlock_by_owner"), r);
        if (r == 0) MUST(pthread_mutex_unlock(&m) == 0);
    }
    rc(key(prefix, "other_trylock"), other(&m, TRYLOCK));
    rc(key(prefix, "other_timedlock_realtime"), other(&m, TIMEDLOCK_RT));
    rc(key(prefix, "other_clocklock_monotonic"), other(&m, CLOCKLOCK_MONO));
    rc(key(prefix, "other_timedlock_bad_nsec"), other(&m, TIMEDLOCK_BAD_NSEC));
    if (recursive || errorcheck) rc(key(prefix, "other_unlock"), other(&m, UNLOCK));
    rc(key(prefix, "unlock"), pthread_mutex_unlock(&m));
    if (recursive || errorcheck) rc(key(prefix, "unlock_unlocked"), pthread_mutex_unlock(&m));
    rc(key(prefix, "other_trylock_after_unlock"), other(&m, TRYLOCK));

    struct timespec past = {1, 0};
    r = pthread_mutex_timedlock(&m, &past);
    rc(key(prefix, "timedlock_free_past_deadline"), r);
    if (r == 0) MUST(pthread_mutex_unlock(&m) == 0);
    struct timespec d = deadline_ms(CLOCK_MONOTONIC, SHORT_MS);
    r = pthread_mutex_clocklock(&m, CLOCK_PROCESS_CPUTIME_ID, &d);
    rc(key(prefix, "clocklock_cputime_clock"), r);
    if (r == 0) MUST(pthread_mutex_unlock(&m) == 0);
    show(key(prefix, "two_threads_count"), "%ld", count_two(&m));
    rc(key(prefix, "destroy"), pthread_mutex_destroy(&m));
}

static void section_types(void) {
    one_type("mutex_normal", PTHREAD_MUTEX_NORMAL);
    one_type("mutex_recursive", PTHREAD_MUTEX_RECURSIVE);
    one_type("mutex_errorcheck", PTHREAD_MUTEX_ERRORCHECK);
    one_type("mutex_default", -1);

    pthread_mutex_t m;
    rc("mutex_init_null_attr", pthread_mutex_init(&m, NULL));
    MUST(pthread_mutex_lock(&m) == 0);
    rc("mutex_null_attr_other_trylock", other(&m, TRYLOCK));
    rc("mutex_destroy_locked", pthread_mutex_destroy(&m));
    MUST(pthread_mutex_unlock(&m) == 0);
    rc("mutex_destroy_unlocked", pthread_mutex_destroy(&m));
}

static void section_recursive_counts(void) {
    pthread_mutexattr_t a;
    MUST(pthread_mutexattr_init(&a) == 0);
    MUST(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE) == 0);
    pthread_mutex_t m;
    MUST(pthread_mutex_init(&m, &a) == 0);
    char buf[64];
    for (int i = 1; i <= 3; i++) {
        snprintf(buf, sizeof buf, "recursive_lock_%d", i);
        rc(buf, pthread_mutex_lock(&m));
    }
    for (int i = 3; i >= 1; i--) {
        snprintf(buf, sizeof buf, "recursive_other_trylock_at_depth_%d", i);
        rc(buf, other(&m, TRYLOCK));
        snprintf(buf, sizeof buf, "recursive_unlock_%d", i);
        rc(buf, pthread_mutex_unlock(&m));
    }
    rc("recursive_unlock_extra", pthread_mutex_unlock(&m));
    rc("recursive_other_trylock_after_all_unlocks", other(&m, TRYLOCK));
    MUST(pthread_mutex_destroy(&m) == 0);
    MUST(pthread_mutexattr_destroy(&a) == 0);
}

static const char *type_name(int t) {
    switch (t) {
    case PTHREAD_MUTEX_NORMAL: return "NORMAL";
    case PTHREAD_MUTEX_RECURSIVE: return "RECURSIVE";
    case PTHREAD_MUTEX_ERRORCHECK: return "ERRORCHECK";
    default: return "?";
    }
}

static void section_attr(void) {
    pthread_mutexattr_t a;
    rc("mutexattr_init", pthread_mutexattr_init(&a));
    int v;
    MUST(pthread_mutexattr_gettype(&a, &v) == 0);
    show("mutexattr_default_type", "%s", type_name(v));
    yesno("mutexattr_default_type_is_PTHREAD_MUTEX_DEFAULT", v == PTHREAD_MUTEX_DEFAULT);
    static const struct {
        const char *name;
        int type;
    } types[] = {{"mutexattr_settype_normal", PTHREAD_MUTEX_NORMAL},
                 {"mutexattr_settype_recursive", PTHREAD_MUTEX_RECURSIVE},
                 {"mutexattr_settype_errorcheck", PTHREAD_MUTEX_ERRORCHECK},
                 {"mutexattr_settype_default", PTHREAD_MUTEX_DEFAULT}};
    for (unsigned i = 0; i < sizeof types / sizeof types[0]; i++) {
        int r = pthread_mutexattr_settype(&a, types[i].type);
        MUST(pthread_mutexattr_gettype(&a, &v) == 0);
        show(types[i].name, "%s, reads back %s", ename(r), type_name(v));
    }
    rc("mutexattr_settype_42", pthread_mutexattr_settype(&a, 42));
    rc("mutexattr_settype_minus_1", pthread_mutexattr_settype(&a, -1));
    MUST(pthread_mutexattr_gettype(&a, &v) == 0);
    show("mutexattr_type_after_bad_settype", "%s", type_name(v));

    MUST(pthread_mutexattr_getpshared(&a, &v) == 0);
    show("mutexattr_default_pshared", "%s", v == PTHREAD_PROCESS_PRIVATE ? "PRIVATE" : "SHARED");
    rc("mutexattr_setpshared_shared", pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED));
    MUST(pthread_mutexattr_getpshared(&a, &v) == 0);
    show("mutexattr_pshared_read_back", "%s", v == PTHREAD_PROCESS_PRIVATE ? "PRIVATE" : "SHARED");
    rc("mutexattr_setpshared_private", pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_PRIVATE));
    rc("mutexattr_setpshared_42", pthread_mutexattr_setpshared(&a, 42));

    MUST(pthread_mutexattr_getrobust(&a, &v) == 0);
    show("mutexattr_default_robust", "%s", v == PTHREAD_MUTEX_STALLED ? "STALLED" : "ROBUST");
    rc("mutexattr_setrobust_robust", pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST));
    MUST(pthread_mutexattr_getrobust(&a, &v) == 0);
    show("mutexattr_robust_read_back", "%s", v == PTHREAD_MUTEX_STALLED ? "STALLED" : "ROBUST");
    rc("mutexattr_setrobust_stalled", pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_STALLED));
    rc("mutexattr_setrobust_42", pthread_mutexattr_setrobust(&a, 42));

    static const char *protocols[] = {"NONE", "INHERIT", "PROTECT"};
    MUST(pthread_mutexattr_getprotocol(&a, &v) == 0);
    show("mutexattr_default_protocol", "%s", v >= 0 && v <= 2 ? protocols[v] : "?");
    static const char *set_names[] = {"mutexattr_setprotocol_none", "mutexattr_setprotocol_inherit",
                                      "mutexattr_setprotocol_protect"};
    const int ps[] = {PTHREAD_PRIO_INHERIT, PTHREAD_PRIO_PROTECT, PTHREAD_PRIO_NONE};
    for (unsigned i = 0; i < 3; i++) {
        int r = pthread_mutexattr_setprotocol(&a, ps[i]);
        MUST(pthread_mutexattr_getprotocol(&a, &v) == 0);
        show(set_names[ps[i]], "%s, reads back %s", ename(r), v >= 0 && v <= 2 ? protocols[v] : "?");
    }
    rc("mutexattr_setprotocol_42", pthread_mutexattr_setprotocol(&a, 42));

    int lo = sched_get_priority_min(SCHED_FIFO), hi = sched_get_priority_max(SCHED_FIFO);
    MUST(lo >= 0 && hi > lo);
    rc("mutexattr_setprioceiling_fifo_min", pthread_mutexattr_setprioceiling(&a, lo));
    rc("mutexattr_setprioceiling_fifo_max", pthread_mutexattr_setprioceiling(&a, hi));
    MUST(pthread_mutexattr_getprioceiling(&a, &v) == 0);
    yesno("mutexattr_prioceiling_read_back", v == hi);
    rc("mutexattr_setprioceiling_above_fifo_max", pthread_mutexattr_setprioceiling(&a, hi + 1));
    rc("mutexattr_setprioceiling_below_fifo_min", pthread_mutexattr_setprioceiling(&a, lo - 1));
    rc("mutexattr_destroy", pthread_mutexattr_destroy(&a));
}

static void section_pi(void) {
    pthread_mutexattr_t a;
    MUST(pthread_mutexattr_init(&a) == 0);
    MUST(pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT) == 0);
    pthread_mutex_t m;
    rc("pi_init", pthread_mutex_init(&m, &a));
    rc("pi_lock", pthread_mutex_lock(&m));
    rc("pi_other_trylock", other(&m, TRYLOCK));
    rc("pi_other_timedlock_realtime", other(&m, TIMEDLOCK_RT));
    rc("pi_other_clocklock_monotonic", other(&m, CLOCKLOCK_MONO));
    rc("pi_unlock", pthread_mutex_unlock(&m));
    show("pi_two_threads_count", "%ld", count_two(&m));
    MUST(pthread_mutex_destroy(&m) == 0);

    MUST(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK) == 0);
    MUST(pthread_mutex_init(&m, &a) == 0);
    MUST(pthread_mutex_lock(&m) == 0);
    rc("pi_errorcheck_relock", pthread_mutex_lock(&m));
    rc("pi_errorcheck_other_unlock", other(&m, UNLOCK));
    MUST(pthread_mutex_unlock(&m) == 0);
    rc("pi_errorcheck_unlock_unlocked", pthread_mutex_unlock(&m));
    MUST(pthread_mutex_destroy(&m) == 0);

    MUST(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE) == 0);
    MUST(pthread_mutex_init(&m, &a) == 0);
    rc("pi_recursive_lock_1", pthread_mutex_lock(&m));
    rc("pi_recursive_lock_2", pthread_mutex_lock(&m));
    rc("pi_recursive_other_trylock", other(&m, TRYLOCK));
    rc("pi_recursive_unlock_2", pthread_mutex_unlock(&m));
    rc("pi_recursive_unlock_1", pthread_mutex_unlock(&m));
    rc("pi_recursive_other_trylock_after", other(&m, TRYLOCK));
    MUST(pthread_mutex_destroy(&m) == 0);
    MUST(pthread_mutexattr_destroy(&a) == 0);

    MUST(pthread_mutexattr_init(&a) == 0);
    MUST(pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_PROTECT) == 0);
    MUST(pthread_mutexattr_setprioceiling(&a, sched_get_priority_min(SCHED_FIFO)) == 0);
    rc("pp_init", pthread_mutex_init(&m, &a));
    int ceiling = -1;
    rc("pp_getprioceiling", pthread_mutex_getprioceiling(&m, &ceiling));
    yesno("pp_prioceiling_is_attr", ceiling == sched_get_priority_min(SCHED_FIFO));
    MUST(pthread_mutex_destroy(&m) == 0);
    MUST(pthread_mutexattr_destroy(&a) == 0);
}

static void robust_init(pthread_mutex_t *m, int type, int pshared) {
    pthread_mutexattr_t a;
    MUST(pthread_mutexattr_init(&a) == 0);
    MUST(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0);
    MUST(pthread_mutexattr_settype(&a, type) == 0);
    MUST(pthread_mutexattr_setpshared(&a, pshared) == 0);
    MUST(pthread_mutex_init(m, &a) == 0);
    MUST(pthread_mutexattr_destroy(&a) == 0);
}

static void section_robust(void) {
    pthread_mutex_t m;
    robust_init(&m, PTHREAD_MUTEX_NORMAL, PTHREAD_PROCESS_PRIVATE);
    /* The owner ends holding the lock (its join is the hand-over). */
    rc("robust_owner_locks_and_ends", other(&m, LOCK_AND_LEAVE));
    rc("robust_trylock_after_owner_died", pthread_mutex_trylock(&m));
    rc("robust_consistent", pthread_mutex_consistent(&m));
    rc("robust_unlock_after_consistent", pthread_mutex_unlock(&m));
    rc("robust_lock_again", pthread_mutex_lock(&m));
    rc("robust_consistent_on_healthy", pthread_mutex_consistent(&m));
    rc("robust_other_unlock", other(&m, UNLOCK));
    rc("robust_unlock", pthread_mutex_unlock(&m));

    other(&m, LOCK_AND_LEAVE);
    rc("robust_lock_after_owner_died", pthread_mutex_lock(&m));
    rc("robust_unlock_without_consistent", pthread_mutex_unlock(&m));
    rc("robust_lock_not_recoverable", pthread_mutex_lock(&m));
    rc("robust_other_lock_not_recoverable", other(&m, LOCK_AND_LEAVE));
    /* Last: glibc's trylock leaves the lock word taken when it reports ENOTRECOVERABLE (a later
     * lock would hang), which is nothing to pin; only destroy follows. */
    rc("robust_trylock_not_recoverable", pthread_mutex_trylock(&m));
    rc("robust_destroy_not_recoverable", pthread_mutex_destroy(&m));

    robust_init(&m, PTHREAD_MUTEX_ERRORCHECK, PTHREAD_PROCESS_PRIVATE);
    MUST(pthread_mutex_lock(&m) == 0);
    rc("robust_errorcheck_relock", pthread_mutex_lock(&m));
    MUST(pthread_mutex_unlock(&m) == 0);
    MUST(pthread_mutex_destroy(&m) == 0);

    MUST(pthread_mutex_init(&m, NULL) == 0);
    MUST(pthread_mutex_lock(&m) == 0);
    rc("consistent_on_non_robust", pthread_mutex_consistent(&m));
    MUST(pthread_mutex_unlock(&m) == 0);
    MUST(pthread_mutex_destroy(&m) == 0);
}

struct shared {
    pthread_mutex_t m, robust;
    sem_t child_tried;
    int child_trylock;
    long counter;
};

static pid_t fork_must(void) {
    fflush(stdout);
    pid_t pid = fork();
    MUST(pid >= 0);
    return pid;
}

static int wait_child(pid_t pid) {
    int status;
    MUST(waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void section_pshared(void) {
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    MUST(s != MAP_FAILED);
    pthread_mutexattr_t a;
    MUST(pthread_mutexattr_init(&a) == 0);
    MUST(pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0);
    rc("pshared_init", pthread_mutex_init(&s->m, &a));
    MUST(pthread_mutexattr_destroy(&a) == 0);
    MUST(sem_init(&s->child_tried, 1, 0) == 0);

    MUST(pthread_mutex_lock(&s->m) == 0);
    pid_t pid = fork_must();
    if (pid == 0) {
        s->child_trylock = pthread_mutex_trylock(&s->m);
        MUST(sem_post(&s->child_tried) == 0);
        for (int i = 0; i < 20000; i++) {
            MUST(pthread_mutex_lock(&s->m) == 0);
            s->counter++;
            MUST(pthread_mutex_unlock(&s->m) == 0);
        }
        _exit(0);
    }
    sem_wait_must(&s->child_tried);
    MUST(pthread_mutex_unlock(&s->m) == 0);
    for (int i = 0; i < 20000; i++) {
        MUST(pthread_mutex_lock(&s->m) == 0);
        s->counter++;
        MUST(pthread_mutex_unlock(&s->m) == 0);
    }
    show("pshared_child_status", "%d", wait_child(pid));
    rc("pshared_child_trylock_while_parent_holds", s->child_trylock);
    show("pshared_counter", "%ld", s->counter);
    MUST(pthread_mutex_destroy(&s->m) == 0);

    robust_init(&s->robust, PTHREAD_MUTEX_NORMAL, PTHREAD_PROCESS_SHARED);
    pid = fork_must();
    if (pid == 0) {
        MUST(pthread_mutex_lock(&s->robust) == 0);
        _exit(0); /* holding it */
    }
    show("pshared_robust_child_status", "%d", wait_child(pid));
    rc("pshared_robust_lock_after_child_exit", pthread_mutex_lock(&s->robust));
    rc("pshared_robust_consistent", pthread_mutex_consistent(&s->robust));
    rc("pshared_robust_unlock", pthread_mutex_unlock(&s->robust));
    MUST(pthread_mutex_destroy(&s->robust) == 0);
    MUST(sem_destroy(&s->child_tried) == 0);
    MUST(munmap(s, sizeof *s) == 0);
}

int main(void) {
    section_types();
    section_recursive_counts();
    section_attr();
    section_pi();
    section_robust();
    section_pshared();
    return 0;
}
