/* spin.c: spin locks.
 *
 * Checks: pthread_spin_init (PRIVATE and SHARED: 0); lock; trylock by the holder and by another
 * thread while held (EBUSY); unlock; another thread's trylock after the unlock (0); two threads
 * counting under the lock lose no increment; destroy (0).
 */
#include "conform.h"

static pthread_spinlock_t s;
static long counter;

static int other_trylock(void *arg) {
    (void)arg;
    int r = pthread_spin_trylock(&s);
    if (r == 0) MUST(pthread_spin_unlock(&s) == 0);
    return r;
}

static void *count(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        MUST(pthread_spin_lock(&s) == 0);
        long v = counter;
        *(volatile long *)&counter = v + 1;
        MUST(pthread_spin_unlock(&s) == 0);
    }
    return NULL;
}

int main(void) {
    rc("spin_init_private", pthread_spin_init(&s, PTHREAD_PROCESS_PRIVATE));
    rc("spin_lock", pthread_spin_lock(&s));
    rc("spin_trylock_by_holder", pthread_spin_trylock(&s));
    rc("spin_other_trylock_while_held", in_thread(other_trylock, NULL));
    rc("spin_unlock", pthread_spin_unlock(&s));
    rc("spin_other_trylock_after_unlock", in_thread(other_trylock, NULL));
    rc("spin_trylock_free", pthread_spin_trylock(&s));
    rc("spin_unlock_after_trylock", pthread_spin_unlock(&s));
    pthread_t a = spawn(count, NULL), b = spawn(count, NULL);
    join(a);
    join(b);
    show("spin_two_threads_count", "%ld", counter);
    rc("spin_destroy", pthread_spin_destroy(&s));
    rc("spin_init_shared", pthread_spin_init(&s, PTHREAD_PROCESS_SHARED));
    rc("spin_shared_lock", pthread_spin_lock(&s));
    rc("spin_shared_other_trylock_while_held", in_thread(other_trylock, NULL));
    rc("spin_shared_unlock", pthread_spin_unlock(&s));
    rc("spin_shared_destroy", pthread_spin_destroy(&s));
    return 0;
}
