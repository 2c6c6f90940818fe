/* hard_keys.c: how many pthread keys a program can create. crthreads must not take one of the
 * PTHREAD_KEYS_MAX keys that belong to the program (a thread-exit hook, for example, must not
 * cost a key).
 *
 * usage: hard_keys
 *   First makes crthreads do what it does lazily: malloc and free in the main thread and in a
 *   second thread that exits, and (when crthreads is there) checkpoint(). Then creates keys until
 *   pthread_key_create fails, which must be with EAGAIN, and prints "keys N". With every key
 *   taken, a new thread must still allocate, free and exit, and checkpoint() must still return 0.
 *   Prints "crthreads=C in_region=R" (C: the crthreads functions are there; R: malloc serves
 *   the persistent region at its default place) and "done". The driver (tests/hardening.rs)
 *   compares N under crthreads with N of the same program run without it.
 * For LD_PRELOAD (and the run without crthreads) the program is built without -lcrthreads: the
 * crthreads functions are weak.
 */
#include "check.h"

#include <pthread.h>

#pragma weak checkpoint

#define REGION_BASE 0x200000000000UL
#define REGION_SIZE (64UL << 30)

static void *churn(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        void *p = malloc(16 + (size_t)(i % 300) * 24);
        CHECK(p != NULL, "malloc in a thread failed (errno %d)", errno);
        memset(p, i, 16);
        free(p);
    }
    void *keep = malloc(100000);
    CHECK(keep != NULL, "malloc in a thread failed (errno %d)", errno);
    free(keep);
    return NULL;
}

static void thread_round(const char *when) {
    pthread_t t;
    int rc = pthread_create(&t, NULL, churn, NULL);
    CHECK(rc == 0, "%s: pthread_create failed (%d)", when, rc);
    CHECK(pthread_join(t, NULL) == 0, "%s: pthread_join failed", when);
    if (checkpoint != NULL)
        CHECK(checkpoint() == 0, "%s: checkpoint() failed (errno %d: %s)", when, errno, last_error());
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    void *p = malloc(64);
    CHECK(p != NULL, "malloc failed");
    int in_region = (uintptr_t)p - REGION_BASE < REGION_SIZE;
    free(p);
    thread_round("before the keys");

    int n = 0, rc;
    pthread_key_t k;
    while ((rc = pthread_key_create(&k, NULL)) == 0) n++;
    CHECK(rc == EAGAIN, "pthread_key_create failed with %d after %d keys, expected EAGAIN", rc, n);
    printf("keys %d\n", n);

    thread_round("with every key taken");
    printf("crthreads=%d in_region=%d\n", checkpoint != NULL, in_region);
    printf("done\n");
    return 0;
}
