/* threads_resume.c: a multithreaded computation for the kill-and-resume test of C threads mode
 * (tests/c_threads.rs). Its state lives in malloc'd memory and on the threads' stacks, none in
 * globals (a C program's globals are not restored yet).
 *
 * THREADS workers claim step numbers under a mutex, compute each step's value outside it (the
 * work: preemptible compute), and add it under the mutex to two sums that must stay equal (a
 * torn critical section shows as a difference). Steps go in rounds of ROUND: a worker waits on
 * a condition variable while every step of the round is claimed but not all applied. Workers
 * announce themselves on a semaphore, meet at a barrier at the end, keep a per-thread count in
 * thread-specific data and return it through pthread_join.
 *
 * stderr: `start` when main starts (a restored run resumes without calling main again).
 * stdout: `result <sum> <steps>` at the end.
 * usage: threads_resume THREADS STEPS WORK
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define ROUND 64

struct shared {
    pthread_mutex_t lock;
    pthread_cond_t round_done;
    pthread_barrier_t end;
    sem_t ready;
    pthread_key_t count_key;
    uint64_t steps, next, applied, round;
    uint64_t a, b;
    int work;
};

struct worker {
    struct shared *s;
    uint64_t mine;
};

static void fail(const char *what) {
    fprintf(stderr, "FAIL %s\n", what);
    _Exit(3);
}

static uint64_t mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void *worker(void *arg) {
    struct worker *w = arg;
    struct shared *s = w->s;
    if (pthread_setspecific(s->count_key, &w->mine) != 0) fail("pthread_setspecific");
    if (sem_post(&s->ready) != 0) fail("sem_post");
    if (pthread_mutex_lock(&s->lock) != 0) fail("lock");
    for (;;) {
        while (s->next < s->steps && s->next == (s->round + 1) * ROUND) {
            if (pthread_cond_wait(&s->round_done, &s->lock) != 0) fail("pthread_cond_wait");
        }
        if (s->next >= s->steps) break;
        uint64_t u = s->next++;
        if (pthread_mutex_unlock(&s->lock) != 0) fail("unlock");

        uint64_t v = u;
        for (int r = 0; r < s->work; r++) v = mix(v);

        if (pthread_mutex_lock(&s->lock) != 0) fail("lock");
        if (s->a != s->b) fail("the two sums differ: a critical section was torn");
        s->a += v >> 8;
        s->b += v >> 8;
        (*(uint64_t *)pthread_getspecific(s->count_key))++;
        if (++s->applied == ROUND) {
            s->applied = 0;
            s->round++;
            if (pthread_cond_broadcast(&s->round_done) != 0) fail("pthread_cond_broadcast");
        }
    }
    if (pthread_cond_broadcast(&s->round_done) != 0) fail("pthread_cond_broadcast");
    if (pthread_mutex_unlock(&s->lock) != 0) fail("unlock");
    int r = pthread_barrier_wait(&s->end);
    if (r != 0 && r != PTHREAD_BARRIER_SERIAL_THREAD) fail("pthread_barrier_wait");
    return (void *)(uintptr_t)w->mine;
}

int main(int argc, char **argv) {
    if (argc != 4) fail("usage: threads_resume THREADS STEPS WORK");
    int n = atoi(argv[1]);
    struct shared *s = calloc(1, sizeof *s);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    struct worker *w = calloc((size_t)n, sizeof *w);
    if (n <= 0 || !s || !t || !w) fail("arguments or memory");
    fprintf(stderr, "start\n");
    s->steps = strtoull(argv[2], NULL, 10);
    s->work = atoi(argv[3]);
    if (pthread_mutex_init(&s->lock, NULL) != 0 || pthread_cond_init(&s->round_done, NULL) != 0 ||
        pthread_barrier_init(&s->end, NULL, (unsigned)n) != 0 || sem_init(&s->ready, 0, 0) != 0 ||
        pthread_key_create(&s->count_key, NULL) != 0)
        fail("init");
    for (int i = 0; i < n; i++) {
        w[i].s = s;
        if (pthread_create(&t[i], NULL, worker, &w[i]) != 0) fail("pthread_create");
    }
    for (int i = 0; i < n; i++)
        if (sem_wait(&s->ready) != 0) fail("sem_wait");
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        void *r;
        if (pthread_join(t[i], &r) != 0) fail("pthread_join");
        total += (uintptr_t)r;
    }
    if (s->a != s->b) fail("the two sums differ at the end");
    if (total != s->steps) fail("the workers' counts do not add up to the steps");
    printf("result %016" PRIx64 " %" PRIu64 "\n", s->a, total);
    return 0;
}
