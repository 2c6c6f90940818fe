/* rwlock.c: read-write locks and their attributes.
 *
 * Checks, with the lock held by another thread for reading: tryrdlock, rdlock, timedrdlock (0:
 * readers share), trywrlock (EBUSY), timedwrlock with a CLOCK_REALTIME deadline and clockwrlock
 * with CLOCK_MONOTONIC (ETIMEDOUT). Held by another thread for writing: tryrdlock and trywrlock
 * (EBUSY), timedrdlock/timedwrlock (CLOCK_REALTIME) and clockrdlock/clockwrlock
 * (CLOCK_MONOTONIC) (ETIMEDOUT). By the caller: a second read lock (0, and two unlocks), a read
 * or write lock while holding the write lock (EDEADLK, glibc's answer where POSIX allows a
 * deadlock), tryrdlock/trywrlock while holding the write lock (EBUSY). Malformed deadlines and
 * clocks the lock does not take (EINVAL) while the lock is held elsewhere; timed locks of a free
 * lock with a deadline long past (0). Every kind of attribute the lock can have (default,
 * PREFER_WRITER_NONRECURSIVE_NP) passes the same checks.
 * Exclusion: two writers and two readers at once; the writers keep two counters equal under the
 * write lock, readers never see them differ, and no increment is lost.
 * Attributes: defaults (PRIVATE, PREFER_READER_NP), setpshared and setkind_np with each valid
 * value (read back) and bad values (EINVAL).
 */
#include "conform.h"

enum op { RD, WR, TRYRD, TRYWR, TIMEDRD, TIMEDWR, CLOCKRD, CLOCKWR };

struct other {
    pthread_rwlock_t *l;
    enum op op;
};

/* One attempt from the calling thread; whatever it acquires is released again. */
static int attempt(pthread_rwlock_t *l, enum op op) {
    struct timespec rt = deadline_ms(CLOCK_REALTIME, SHORT_MS), mono = deadline_ms(CLOCK_MONOTONIC, SHORT_MS);
    int r;
    switch (op) {
    case RD: r = pthread_rwlock_rdlock(l); break;
    case WR: r = pthread_rwlock_wrlock(l); break;
    case TRYRD: r = pthread_rwlock_tryrdlock(l); break;
    case TRYWR: r = pthread_rwlock_trywrlock(l); break;
    case TIMEDRD: r = pthread_rwlock_timedrdlock(l, &rt); break;
    case TIMEDWR: r = pthread_rwlock_timedwrlock(l, &rt); break;
    case CLOCKRD: r = pthread_rwlock_clockrdlock(l, CLOCK_MONOTONIC, &mono); break;
    case CLOCKWR: r = pthread_rwlock_clockwrlock(l, CLOCK_MONOTONIC, &mono); break;
    default: abort();
    }
    if (r == 0) MUST(pthread_rwlock_unlock(l) == 0);
    return r;
}

static int do_other(void *arg) {
    struct other *o = arg;
    return attempt(o->l, o->op);
}

static int other(pthread_rwlock_t *l, enum op op) {
    struct other o = {l, op};
    return in_thread(do_other, &o);
}

struct bad {
    pthread_rwlock_t *l;
    int which;
};

static int bad_deadline(void *arg) {
    struct bad *b = arg;
    struct timespec d = deadline_ms(CLOCK_REALTIME, 1000);
    d.tv_nsec = 1000000000L;
    struct timespec m = deadline_ms(CLOCK_MONOTONIC, SHORT_MS);
    int r;
    switch (b->which) {
    case 0: r = pthread_rwlock_timedrdlock(b->l, &d); break;
    case 1: r = pthread_rwlock_timedwrlock(b->l, &d); break;
    case 2: r = pthread_rwlock_clockrdlock(b->l, CLOCK_PROCESS_CPUTIME_ID, &m); break;
    default: r = pthread_rwlock_clockwrlock(b->l, CLOCK_PROCESS_CPUTIME_ID, &m); break;
    }
    if (r == 0) MUST(pthread_rwlock_unlock(b->l) == 0);
    return r;
}

static char line[128];

static const char *key(const char *prefix, const char *check) {
    snprintf(line, sizeof line, "%s_%s", prefix, check);
    return line;
}

static void one_kind(const char *prefix, const pthread_rwlockattr_t *a) {
    pthread_rwlock_t l;
    rc(key(prefix, "init"), pthread_rwlock_init(&l, a));

    rc(key(prefix, "rdlock"), pthread_rwlock_rdlock(&l));
    rc(key(prefix, "other_tryrdlock_while_read"), other(&l, TRYRD));
    rc(key(prefix, "other_rdlock_while_read"), other(&l, RD));
    rc(key(prefix, "other_timedrdlock_while_read"), other(&l, TIMEDRD));
    rc(key(prefix, "other_trywrlock_while_read"), other(&l, TRYWR));
    rc(key(prefix, "other_timedwrlock_while_read"), other(&l, TIMEDWR));
    rc(key(prefix, "other_clockwrlock_while_read"), other(&l, CLOCKWR));
    struct bad b = {&l, 1};
    rc(key(prefix, "other_timedwrlock_bad_nsec_while_read"), in_thread(bad_deadline, &b));
    b.which = 3;
    rc(key(prefix, "other_clockwrlock_cputime_clock_while_read"), in_thread(bad_deadline, &b));
    rc(key(prefix, "rdlock_again_by_reader"), pthread_rwlock_rdlock(&l));
    rc(key(prefix, "unlock_read_1"), pthread_rwlock_unlock(&l));
    rc(key(prefix, "other_trywrlock_while_still_read"), other(&l, TRYWR));
    rc(key(prefix, "unlock_read_2"), pthread_rwlock_unlock(&l));
    rc(key(prefix, "other_trywrlock_after_unlocks"), other(&l, TRYWR));

    rc(key(prefix, "wrlock"), pthread_rwlock_wrlock(&l));
    rc(key(prefix, "rdlock_by_writer"), pthread_rwlock_rdlock(&l));
    rc(key(prefix, "wrlock_by_writer"), pthread_rwlock_wrlock(&l));
    rc(key(prefix, "tryrdlock_by_writer"), pthread_rwlock_tryrdlock(&l));
    rc(key(prefix, "trywrlock_by_writer"), pthread_rwlock_trywrlock(&l));
    rc(key(prefix, "other_tryrdlock_while_written"), other(&l, TRYRD));
    rc(key(prefix, "other_trywrlock_while_written"), other(&l, TRYWR));
    rc(key(prefix, "other_timedrdlock_while_written"), other(&l, TIMEDRD));
    rc(key(prefix, "other_timedwrlock_while_written"), other(&l, TIMEDWR));
    rc(key(prefix, "other_clockrdlock_while_written"), other(&l, CLOCKRD));
    rc(key(prefix, "other_clockwrlock_while_written"), other(&l, CLOCKWR));
    b.which = 0;
    rc(key(prefix, "other_timedrdlock_bad_nsec_while_written"), in_thread(bad_deadline, &b));
    b.which = 2;
    rc(key(prefix, "other_clockrdlock_cputime_clock_while_written"), in_thread(bad_deadline, &b));
    rc(key(prefix, "unlock_write"), pthread_rwlock_unlock(&l));
    rc(key(prefix, "other_tryrdlock_after_unlock"), other(&l, TRYRD));

    struct timespec past = {1, 0};
    int r = pthread_rwlock_timedrdlock(&l, &past);
    rc(key(prefix, "timedrdlock_free_past_deadline"), r);
    if (r == 0) MUST(pthread_rwlock_unlock(&l) == 0);
    r = pthread_rwlock_timedwrlock(&l, &past);
    rc(key(prefix, "timedwrlock_free_past_deadline"), r);
    if (r == 0) MUST(pthread_rwlock_unlock(&l) == 0);
    rc(key(prefix, "destroy"), pthread_rwlock_destroy(&l));
}

static struct {
    pthread_rwlock_t l;
    long a, b;
    int torn;
} shared = {PTHREAD_RWLOCK_INITIALIZER, 0, 0, 0};

static void *writer(void *arg) {
    (void)arg;
    for (int i = 0; i < 5000; i++) {
        MUST(pthread_rwlock_wrlock(&shared.l) == 0);
        long v = shared.a;
        *(volatile long *)&shared.a = v + 1;
        *(volatile long *)&shared.b = v + 1;
        MUST(pthread_rwlock_unlock(&shared.l) == 0);
    }
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    /* A fixed number of reads, not "until the writers are done": readers that keep the lock
     * shared may hold writers off for as long as they like. */
    for (int i = 0; i < 5000; i++) {
        MUST(pthread_rwlock_rdlock(&shared.l) == 0);
        long a = *(volatile long *)&shared.a, b = *(volatile long *)&shared.b;
        if (a != b) __atomic_fetch_add(&shared.torn, 1, __ATOMIC_RELAXED);
        MUST(pthread_rwlock_unlock(&shared.l) == 0);
    }
    return NULL;
}

static void section_exclusion(void) {
    pthread_t w1 = spawn(writer, NULL), r1 = spawn(reader, NULL), w2 = spawn(writer, NULL), r2 = spawn(reader, NULL);
    join(w1);
    join(w2);
    join(r1);
    join(r2);
    show("rwlock_two_writers_count", "%ld", shared.a);
    show("rwlock_readers_saw_torn_state", "%d", shared.torn);
}

static const char *kind_name(int k) {
    switch (k) {
    case PTHREAD_RWLOCK_PREFER_READER_NP: return "PREFER_READER_NP";
    case PTHREAD_RWLOCK_PREFER_WRITER_NP: return "PREFER_WRITER_NP";
    case PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP: return "PREFER_WRITER_NONRECURSIVE_NP";
    default: return "?";
    }
}

static void section_attr(void) {
    pthread_rwlockattr_t a;
    rc("rwlockattr_init", pthread_rwlockattr_init(&a));
    int v;
    MUST(pthread_rwlockattr_getpshared(&a, &v) == 0);
    show("rwlockattr_default_pshared", "%s", v == PTHREAD_PROCESS_PRIVATE ? "PRIVATE" : "SHARED");
    rc("rwlockattr_setpshared_shared", pthread_rwlockattr_setpshared(&a, PTHREAD_PROCESS_SHARED));
    MUST(pthread_rwlockattr_getpshared(&a, &v) == 0);
    show("rwlockattr_pshared_read_back", "%s", v == PTHREAD_PROCESS_PRIVATE ? "PRIVATE" : "SHARED");
    rc("rwlockattr_setpshared_42", pthread_rwlockattr_setpshared(&a, 42));
    rc("rwlockattr_setpshared_private", pthread_rwlockattr_setpshared(&a, PTHREAD_PROCESS_PRIVATE));
    MUST(pthread_rwlockattr_getkind_np(&a, &v) == 0);
    show("rwlockattr_default_kind", "%s", kind_name(v));
    const int kinds[] = {PTHREAD_RWLOCK_PREFER_WRITER_NP, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP,
                         PTHREAD_RWLOCK_PREFER_READER_NP};
    for (unsigned i = 0; i < 3; i++) {
        int r = pthread_rwlockattr_setkind_np(&a, kinds[i]);
        MUST(pthread_rwlockattr_getkind_np(&a, &v) == 0);
        char name[96];
        snprintf(name, sizeof name, "rwlockattr_setkind_%s", kind_name(kinds[i]));
        show(name, "%s, reads back %s", ename(r), kind_name(v));
    }
    rc("rwlockattr_setkind_42", pthread_rwlockattr_setkind_np(&a, 42));
    rc("rwlockattr_destroy", pthread_rwlockattr_destroy(&a));
}

int main(void) {
    section_attr();
    one_kind("rwlock", NULL);
    pthread_rwlockattr_t a;
    MUST(pthread_rwlockattr_init(&a) == 0);
    MUST(pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP) == 0);
    one_kind("rwlock_writer_pref", &a);
    MUST(pthread_rwlockattr_destroy(&a) == 0);
    section_exclusion();
    return 0;
}
