/* attr.c: thread attributes, and what pthread_getattr_np reports about running threads.
 *
 * Checks: the defaults of a fresh pthread_attr_t (joinable, a stack of at least
 * PTHREAD_STACK_MIN, a guard of one page, system scope, inherited scheduling, SCHED_OTHER);
 * setdetachstate with a bad value (EINVAL) and DETACHED (the thread is not joinable, EINVAL);
 * setstacksize below PTHREAD_STACK_MIN and 0 (EINVAL), at PTHREAD_STACK_MIN and 1 MiB (read back
 * as set, and a thread runs on it: pthread_getattr_np reports at least the size asked for, and a
 * stack that holds the thread's locals); setguardsize (read back as set, 0 and pages);
 * setscope PROCESS (ENOTSUP); pthread_getattr_np of the main thread (its stack holds main's
 * locals) and of a detached thread (DETACHED, also after pthread_detach(pthread_self())).
 * A caller-supplied stack (pthread_attr_setstack): a size below PTHREAD_STACK_MIN is refused
 * (EINVAL); getstack reads back what was set; the thread runs on exactly that memory and
 * pthread_getattr_np reports that address and size, with no guard; the stack can be used again
 * for another thread after a join.
 */
#include "conform.h"

#include <sys/mman.h>

static long page;

struct seen {
    int rc;
    int detachstate;
    size_t stacksize, guardsize;
    void *stackaddr;
    int local_inside; /* a local of the thread lies in [stackaddr, stackaddr + stacksize) */
};

static void look_at_self(struct seen *s) {
    int local = 0;
    pthread_attr_t a;
    s->rc = pthread_getattr_np(pthread_self(), &a);
    if (s->rc != 0) return;
    MUST(pthread_attr_getdetachstate(&a, &s->detachstate) == 0);
    MUST(pthread_attr_getstack(&a, &s->stackaddr, &s->stacksize) == 0);
    MUST(pthread_attr_getguardsize(&a, &s->guardsize) == 0);
    uintptr_t lo = (uintptr_t)s->stackaddr, at = (uintptr_t)&local;
    s->local_inside = at >= lo && at < lo + s->stacksize;
    MUST(pthread_attr_destroy(&a) == 0);
}

static void *look(void *arg) {
    look_at_self(arg);
    return NULL;
}

/* For detached threads: reports, then posts *done. */
struct detached {
    struct seen before, after;
    sem_t done;
};

static void *look_detached(void *arg) {
    struct detached *d = arg;
    look_at_self(&d->before);
    MUST(pthread_detach(pthread_self()) == 0);
    look_at_self(&d->after);
    MUST(sem_post(&d->done) == 0);
    return NULL;
}

static void *wait_sem(void *arg) {
    sem_wait_must(arg);
    return NULL;
}

static const char *detach_name(int s) {
    return s == PTHREAD_CREATE_JOINABLE ? "JOINABLE" : s == PTHREAD_CREATE_DETACHED ? "DETACHED" : "?";
}

static void section_defaults(void) {
    pthread_attr_t a;
    rc("attr_init", pthread_attr_init(&a));
    int v;
    size_t sz;
    MUST(pthread_attr_getdetachstate(&a, &v) == 0);
    show("default_detachstate", "%s", detach_name(v));
    MUST(pthread_attr_getstacksize(&a, &sz) == 0);
    yesno("default_stacksize_at_least_min", sz >= (size_t)PTHREAD_STACK_MIN);
    MUST(pthread_attr_getguardsize(&a, &sz) == 0);
    show("default_guardsize_pages", "%zu", sz / (size_t)page);
    MUST(pthread_attr_getscope(&a, &v) == 0);
    show("default_scope", "%s", v == PTHREAD_SCOPE_SYSTEM ? "SYSTEM" : "PROCESS");
    MUST(pthread_attr_getinheritsched(&a, &v) == 0);
    show("default_inheritsched", "%s", v == PTHREAD_INHERIT_SCHED ? "INHERIT" : "EXPLICIT");
    MUST(pthread_attr_getschedpolicy(&a, &v) == 0);
    show("default_schedpolicy", "%s", v == SCHED_OTHER ? "SCHED_OTHER" : "other");
    rc("setscope_process", pthread_attr_setscope(&a, PTHREAD_SCOPE_PROCESS));
    rc("setscope_system", pthread_attr_setscope(&a, PTHREAD_SCOPE_SYSTEM));
    rc("attr_destroy", pthread_attr_destroy(&a));
}

static void section_detachstate(void) {
    pthread_attr_t a;
    MUST(pthread_attr_init(&a) == 0);
    rc("setdetachstate_bad", pthread_attr_setdetachstate(&a, 42));
    rc("setdetachstate_detached", pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED));
    int v;
    MUST(pthread_attr_getdetachstate(&a, &v) == 0);
    show("getdetachstate_after_set", "%s", detach_name(v));

    /* A detached thread, kept running so that its handle stays valid while we look at it. */
    static sem_t hold;
    MUST(sem_init(&hold, 0, 0) == 0);
    pthread_t t;
    rc("create_detached", pthread_create(&t, &a, wait_sem, &hold));
    rc("join_created_detached", pthread_join(t, NULL));
    pthread_attr_t got;
    rc("getattr_np_detached", pthread_getattr_np(t, &got));
    MUST(pthread_attr_getdetachstate(&got, &v) == 0);
    show("getattr_np_detached_detachstate", "%s", detach_name(v));
    MUST(pthread_attr_destroy(&got) == 0);
    MUST(sem_post(&hold) == 0);
    MUST(pthread_attr_destroy(&a) == 0);

    static struct detached d;
    MUST(sem_init(&d.done, 0, 0) == 0);
    pthread_t u = spawn(look_detached, &d);
    (void)u;
    sem_wait_must(&d.done);
    show("getattr_np_joinable_thread", "%s", detach_name(d.before.detachstate));
    show("getattr_np_after_self_detach", "%s", detach_name(d.after.detachstate));
}

static void section_stacksize(void) {
    pthread_attr_t a;
    MUST(pthread_attr_init(&a) == 0);
    size_t sz;
    rc("setstacksize_zero", pthread_attr_setstacksize(&a, 0));
    rc("setstacksize_below_min", pthread_attr_setstacksize(&a, PTHREAD_STACK_MIN - 1));
    rc("setstacksize_min", pthread_attr_setstacksize(&a, PTHREAD_STACK_MIN));
    MUST(pthread_attr_getstacksize(&a, &sz) == 0);
    yesno("getstacksize_is_min", sz == (size_t)PTHREAD_STACK_MIN);
    struct seen s;
    pthread_t t;
    rc("create_min_stack", pthread_create(&t, &a, look, &s));
    join(t);
    rc("getattr_np_min_stack", s.rc);
    yesno("getattr_np_min_stack_at_least_asked", s.stacksize >= (size_t)PTHREAD_STACK_MIN);
    yesno("min_stack_holds_locals", s.local_inside);

    size_t mib = 1 << 20;
    rc("setstacksize_1mib", pthread_attr_setstacksize(&a, mib));
    MUST(pthread_attr_getstacksize(&a, &sz) == 0);
    show("getstacksize_1mib", "%zu", sz);
    rc("create_1mib_stack", pthread_create(&t, &a, look, &s));
    join(t);
    yesno("getattr_np_1mib_at_least_asked", s.stacksize >= mib);
    yesno("getattr_np_1mib_under_2mib", s.stacksize < 2 * mib);
    yesno("1mib_stack_holds_locals", s.local_inside);
    show("getattr_np_1mib_guard_pages", "%zu", s.guardsize / (size_t)page);
    MUST(pthread_attr_destroy(&a) == 0);

    struct seen m;
    look_at_self(&m);
    rc("getattr_np_main", m.rc);
    yesno("main_stack_holds_locals", m.local_inside);
    show("getattr_np_main_detachstate", "%s", detach_name(m.detachstate));
}

static void section_guardsize(void) {
    pthread_attr_t a;
    MUST(pthread_attr_init(&a) == 0);
    size_t sz;
    rc("setguardsize_zero", pthread_attr_setguardsize(&a, 0));
    MUST(pthread_attr_getguardsize(&a, &sz) == 0);
    show("getguardsize_zero", "%zu", sz);
    rc("setguardsize_3_pages", pthread_attr_setguardsize(&a, 3 * (size_t)page));
    MUST(pthread_attr_getguardsize(&a, &sz) == 0);
    show("getguardsize_3_pages", "%zu", sz / (size_t)page);
    struct seen s;
    pthread_t t;
    rc("create_3_page_guard", pthread_create(&t, &a, look, &s));
    join(t);
    show("getattr_np_guard_pages", "%zu", s.guardsize / (size_t)page);
    MUST(pthread_attr_setguardsize(&a, 0) == 0);
    rc("create_no_guard", pthread_create(&t, &a, look, &s));
    join(t);
    show("getattr_np_no_guard", "%zu", s.guardsize);
    MUST(pthread_attr_destroy(&a) == 0);
}

static void section_setstack(void) {
    size_t size = 256 << 10;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MUST(mem != MAP_FAILED);
    pthread_attr_t a;
    MUST(pthread_attr_init(&a) == 0);
    rc("setstack_below_min", pthread_attr_setstack(&a, mem, PTHREAD_STACK_MIN - 1));
    rc("setstack", pthread_attr_setstack(&a, mem, size));
    void *addr;
    size_t sz;
    MUST(pthread_attr_getstack(&a, &addr, &sz) == 0);
    yesno("getstack_reads_back", addr == mem && sz == size);
    MUST(pthread_attr_getstacksize(&a, &sz) == 0);
    yesno("getstacksize_after_setstack", sz == size);

    for (int round = 0; round < 2; round++) {
        struct seen s;
        pthread_t t;
        int r = pthread_create(&t, &a, look, &s);
        if (round == 0) rc("create_on_own_stack", r);
        MUST(r == 0);
        join(t);
        if (round == 0) {
            rc("getattr_np_own_stack", s.rc);
            yesno("own_stack_holds_locals", s.local_inside);
            yesno("getattr_np_own_stack_address", s.stackaddr == mem);
            yesno("getattr_np_own_stack_size", s.stacksize == size);
            show("getattr_np_own_stack_guard", "%zu", s.guardsize);
        } else {
            yesno("own_stack_reused_after_join", s.local_inside && s.stackaddr == mem);
        }
    }
    MUST(pthread_attr_destroy(&a) == 0);
    MUST(munmap(mem, size) == 0);
}

int main(void) {
    page = sysconf(_SC_PAGESIZE);
    MUST(page > 0);
    section_defaults();
    section_detachstate();
    section_stacksize();
    section_guardsize();
    section_setstack();
    return 0;
}
