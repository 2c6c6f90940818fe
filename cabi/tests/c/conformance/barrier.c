/* barrier.c: barriers and their attributes.
 *
 * Checks: pthread_barrier_init with count 0 (EINVAL); a barrier of one returns
 * PTHREAD_BARRIER_SERIAL_THREAD to every wait; four threads cross a barrier of four 300 times:
 * in every generation exactly one wait returns PTHREAD_BARRIER_SERIAL_THREAD and the others 0,
 * and no thread leaves a generation before all four arrived at it; barrierattr defaults
 * (PRIVATE), setpshared (read back, bad value EINVAL), a barrier initialised from a SHARED
 * attribute works; destroy (0).
 */
#include "conform.h"

enum { THREADS = 4, GENERATIONS = 300 };

static pthread_barrier_t b;
static atomic_int arrived[GENERATIONS], serial[GENERATIONS], early, odd_results;

static void *cross(void *arg) {
    (void)arg;
    for (int g = 0; g < GENERATIONS; g++) {
        atomic_fetch_add(&arrived[g], 1);
        int r = pthread_barrier_wait(&b);
        if (r == PTHREAD_BARRIER_SERIAL_THREAD)
            atomic_fetch_add(&serial[g], 1);
        else if (r != 0)
            atomic_fetch_add(&odd_results, 1);
        if (atomic_load(&arrived[g]) != THREADS) atomic_fetch_add(&early, 1);
    }
    return NULL;
}

static const char *wait_name(int r) {
    return r == PTHREAD_BARRIER_SERIAL_THREAD ? "PTHREAD_BARRIER_SERIAL_THREAD" : ename(r);
}

int main(void) {
    rc("barrier_init_count_0", pthread_barrier_init(&b, NULL, 0));

    rc("barrier_init_count_1", pthread_barrier_init(&b, NULL, 1));
    for (int i = 1; i <= 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "barrier_of_one_wait_%d", i);
        show(name, "%s", wait_name(pthread_barrier_wait(&b)));
    }
    rc("barrier_of_one_destroy", pthread_barrier_destroy(&b));

    rc("barrier_init_count_4", pthread_barrier_init(&b, NULL, THREADS));
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) t[i] = spawn(cross, NULL);
    for (int i = 0; i < THREADS; i++) join(t[i]);
    int one = 0;
    for (int g = 0; g < GENERATIONS; g++) one += atomic_load(&serial[g]) == 1;
    show("barrier_generations_with_exactly_one_serial", "%d of %d", one, GENERATIONS);
    show("barrier_other_results", "%d", atomic_load(&odd_results));
    show("barrier_left_before_all_arrived", "%d", atomic_load(&early));
    rc("barrier_destroy", pthread_barrier_destroy(&b));

    pthread_barrierattr_t a;
    rc("barrierattr_init", pthread_barrierattr_init(&a));
    int v;
    MUST(pthread_barrierattr_getpshared(&a, &v) == 0);
    show("barrierattr_default_pshared", "%s", v == PTHREAD_PROCESS_PRIVATE ? "PRIVATE" : "SHARED");
    rc("barrierattr_setpshared_shared", pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_SHARED));
    MUST(pthread_barrierattr_getpshared(&a, &v) == 0);
    show("barrierattr_pshared_read_back", "%s", v == PTHREAD_PROCESS_PRIVATE ? "PRIVATE" : "SHARED");
    rc("barrierattr_setpshared_42", pthread_barrierattr_setpshared(&a, 42));
    rc("barrier_init_shared_attr", pthread_barrier_init(&b, &a, 1));
    show("barrier_shared_of_one_wait", "%s", wait_name(pthread_barrier_wait(&b)));
    rc("barrier_shared_destroy", pthread_barrier_destroy(&b));
    rc("barrierattr_destroy", pthread_barrierattr_destroy(&a));
    return 0;
}
