/* key.c: thread-specific data.
 *
 * Checks: pthread_key_create (0); a fresh key reads NULL in every thread; values are per
 * thread (a thread's setspecific is not seen by main, and main's value survives the thread);
 * at thread exit the destructor runs once with the thread's value, and getspecific inside it
 * reads NULL; no destructor runs for a NULL value or for the key of a thread that never set
 * it; a destructor that sets its own key again is called again, up to
 * PTHREAD_DESTRUCTOR_ITERATIONS times in all (glibc: 4); one that sets it again on its first two
 * calls only is called 3 times; a value a destructor sets on another key is destroyed too; destructors run
 * for a thread that ends by pthread_exit and for one cancelled; after pthread_key_delete a
 * thread's value is no longer destroyed; pthread_key_delete twice and setspecific on a deleted
 * key (EINVAL, glibc's answer where POSIX leaves it undefined); creating keys until the limit:
 * PTHREAD_KEYS_MAX keys (EAGAIN after the last), every one holds its own value, and a thread
 * that sets them all has all their destructors run when it ends; after deleting them all,
 * keys can be created again.
 */
#include "conform.h"

#include <limits.h>

static pthread_key_t k, k2;
static atomic_int destroyed, destroyed_k2, null_inside, wrong_value;

static void destructor(void *v) {
    atomic_fetch_add(&destroyed, 1);
    if (v != (void *)0x1234) atomic_fetch_add(&wrong_value, 1);
    if (pthread_getspecific(k) == NULL) atomic_fetch_add(&null_inside, 1);
}

struct seen {
    void *before, *after;
};

static void *set_value(void *arg) {
    struct seen *s = arg;
    s->before = pthread_getspecific(k);
    MUST(pthread_setspecific(k, (void *)0x1234) == 0);
    s->after = pthread_getspecific(k);
    return NULL;
}

static void *set_null(void *arg) {
    (void)arg;
    MUST(pthread_setspecific(k, (void *)0x1234) == 0);
    MUST(pthread_setspecific(k, NULL) == 0);
    return NULL;
}

static void *set_nothing(void *arg) { return arg; }

static void *set_and_exit(void *arg) {
    (void)arg;
    MUST(pthread_setspecific(k, (void *)0x1234) == 0);
    pthread_exit(NULL);
}

static void *set_and_wait_cancel(void *arg) {
    MUST(pthread_setspecific(k, (void *)0x1234) == 0);
    MUST(sem_post(arg) == 0);
    for (;;) pause(); /* a cancellation point */
}

static atomic_int resets_forever, resets_twice;

static void reset_forever(void *v) {
    atomic_fetch_add(&resets_forever, 1);
    MUST(pthread_setspecific(k, v) == 0);
}

/* Sets the value again on its first two calls only. */
static void reset_twice(void *v) {
    if (atomic_fetch_add(&resets_twice, 1) + 1 < 3) MUST(pthread_setspecific(k, v) == 0);
}

static void destroy_k2(void *v) {
    (void)v;
    atomic_fetch_add(&destroyed_k2, 1);
}

static void set_k2(void *v) { MUST(pthread_setspecific(k2, v) == 0); }

static void *set_k(void *arg) {
    MUST(pthread_setspecific(k, arg) == 0);
    return NULL;
}

static void section_basics(void) {
    rc("key_create", pthread_key_create(&k, destructor));
    yesno("key_fresh_reads_null_in_main", pthread_getspecific(k) == NULL);
    MUST(pthread_setspecific(k, (void *)0x99) == 0);
    struct seen s;
    join(spawn(set_value, &s));
    yesno("key_fresh_reads_null_in_thread", s.before == NULL);
    yesno("key_thread_reads_own_value", s.after == (void *)0x1234);
    yesno("key_main_value_kept", pthread_getspecific(k) == (void *)0x99);
    show("key_destructor_calls_after_thread_exit", "%d", atomic_load(&destroyed));
    show("key_destructor_wrong_values", "%d", atomic_load(&wrong_value));
    show("key_getspecific_null_inside_destructor", "%d of 1", atomic_load(&null_inside));
    join(spawn(set_null, NULL));
    join(spawn(set_nothing, NULL));
    show("key_destructor_calls_after_null_and_unset", "%d", atomic_load(&destroyed));
    join(spawn(set_and_exit, NULL));
    show("key_destructor_calls_after_pthread_exit", "%d", atomic_load(&destroyed));
    sem_t ready;
    MUST(sem_init(&ready, 0, 0) == 0);
    pthread_t t = spawn(set_and_wait_cancel, &ready);
    sem_wait_must(&ready);
    MUST(pthread_cancel(t) == 0);
    yesno("key_cancelled_thread_joins_canceled", join(t) == PTHREAD_CANCELED);
    show("key_destructor_calls_after_cancel", "%d", atomic_load(&destroyed));
    MUST(pthread_setspecific(k, NULL) == 0);

    rc("key_delete", pthread_key_delete(k));
    rc("key_delete_twice", pthread_key_delete(k));
    rc("key_setspecific_deleted", pthread_setspecific(k, (void *)1));

    /* Deleted while a thread holds a value: that value is not destroyed. */
    MUST(pthread_key_create(&k, destructor) == 0);
    int before = atomic_load(&destroyed);
    t = spawn(set_and_wait_cancel, &ready);
    sem_wait_must(&ready);
    MUST(pthread_key_delete(k) == 0);
    MUST(pthread_cancel(t) == 0);
    join(t);
    show("key_destructor_calls_after_delete", "%d", atomic_load(&destroyed) - before);
}

static void section_iterations(void) {
    show("PTHREAD_DESTRUCTOR_ITERATIONS", "%d", PTHREAD_DESTRUCTOR_ITERATIONS);
    MUST(pthread_key_create(&k, reset_forever) == 0);
    join(spawn(set_k, (void *)1));
    show("key_destructor_resetting_forever_calls", "%d", atomic_load(&resets_forever));
    MUST(pthread_key_delete(k) == 0);

    MUST(pthread_key_create(&k, reset_twice) == 0);
    join(spawn(set_k, (void *)1));
    show("key_destructor_resetting_twice_calls", "%d", atomic_load(&resets_twice));
    MUST(pthread_key_delete(k) == 0);

    /* k's destructor sets k2, created before and after k: k2's value is destroyed either way. */
    for (int order = 0; order < 2; order++) {
        atomic_store(&destroyed_k2, 0);
        if (order == 0) MUST(pthread_key_create(&k2, destroy_k2) == 0);
        MUST(pthread_key_create(&k, set_k2) == 0);
        if (order == 1) MUST(pthread_key_create(&k2, destroy_k2) == 0);
        join(spawn(set_k, (void *)1));
        show(order == 0 ? "key_value_set_by_destructor_on_earlier_key_destroyed"
                        : "key_value_set_by_destructor_on_later_key_destroyed",
             "%d", atomic_load(&destroyed_k2));
        MUST(pthread_key_delete(k) == 0 && pthread_key_delete(k2) == 0);
    }
}

static pthread_key_t keys[PTHREAD_KEYS_MAX + 16];
static int nkeys;
static atomic_int all_destroyed;

static void count_destroyed(void *v) {
    (void)v;
    atomic_fetch_add(&all_destroyed, 1);
}

static void *set_all(void *arg) {
    (void)arg;
    for (int i = 0; i < nkeys; i++) MUST(pthread_setspecific(keys[i], (void *)(intptr_t)(i + 1)) == 0);
    return NULL;
}

static void section_many(void) {
    show("PTHREAD_KEYS_MAX", "%d", PTHREAD_KEYS_MAX);
    int r = 0;
    while (nkeys < PTHREAD_KEYS_MAX + 16 && (r = pthread_key_create(&keys[nkeys], count_destroyed)) == 0) nkeys++;
    show("keys_created", "%d", nkeys);
    rc("key_create_beyond_limit", r);
    for (int i = 0; i < nkeys; i++) MUST(pthread_setspecific(keys[i], (void *)(intptr_t)(i + 1)) == 0);
    int own = 0;
    for (int i = 0; i < nkeys; i++) own += pthread_getspecific(keys[i]) == (void *)(intptr_t)(i + 1);
    show("keys_holding_own_value", "%d", own);
    join(spawn(set_all, NULL));
    show("keys_destructors_run_at_thread_exit", "%d", atomic_load(&all_destroyed));
    int deleted = 0;
    for (int i = 0; i < nkeys; i++) deleted += pthread_key_delete(keys[i]) == 0;
    show("keys_deleted", "%d", deleted);
    pthread_key_t again;
    rc("key_create_after_deleting_all", pthread_key_create(&again, NULL));
    MUST(pthread_key_delete(again) == 0);
}

int main(void) {
    section_basics();
    section_iterations();
    section_many();
    return 0;
}
