/* app_pool.c: a fixed-size thread pool with a work queue, written the way an application would
 * write one (no test scaffolding). Four workers take tasks from a FIFO queue guarded by a mutex
 * and two condition variables; the main thread submits 200 tasks, waits until all are done,
 * submits a second batch from inside a running task (a task that spawns tasks), then shuts the
 * pool down. Each task of the first batch counts the primes in a block of 500 numbers and finds
 * the longest Collatz chain starting in it; each of the second sums the block's primes. The
 * output (a table of every 20th block and the totals) does not depend on which worker ran
 * what.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS 4
#define BLOCKS 200
#define BLOCK 500

struct task {
    void (*run)(void *);
    void *arg;
    struct task *next;
};

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t work;  /* the queue is not empty, or the pool is stopping */
    pthread_cond_t idle;  /* nothing queued and nothing running */
    struct task *head, *tail;
    int running, stopping;
    pthread_t threads[WORKERS];
};

static void die(const char *what, int err) {
    fprintf(stderr, "%s: %s\n", what, strerror(err));
    exit(1);
}

static void *worker(void *arg) {
    struct pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping) pthread_cond_wait(&p->work, &p->lock);
        if (!p->head) break;
        struct task *t = p->head;
        p->head = t->next;
        if (!p->head) p->tail = NULL;
        p->running++;
        pthread_mutex_unlock(&p->lock);
        t->run(t->arg);
        free(t);
        pthread_mutex_lock(&p->lock);
        p->running--;
        if (!p->head && p->running == 0) pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void pool_start(struct pool *p) {
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    for (int i = 0; i < WORKERS; i++) {
        int e = pthread_create(&p->threads[i], NULL, worker, p);
        if (e) die("pthread_create", e);
    }
}

static void pool_submit(struct pool *p, void (*run)(void *), void *arg) {
    struct task *t = malloc(sizeof *t);
    if (!t) die("malloc", ENOMEM);
    t->run = run;
    t->arg = arg;
    t->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = t;
    else
        p->head = t;
    p->tail = t;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

static void pool_wait(struct pool *p) {
    pthread_mutex_lock(&p->lock);
    while (p->head || p->running) pthread_cond_wait(&p->idle, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

static void pool_stop(struct pool *p) {
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < WORKERS; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->lock);
}

struct result {
    int primes;
    long longest_start;
    int longest_len;
    long doubled_sum; /* from the second batch */
};

static struct result results[BLOCKS];
static struct pool pool;

static int is_prime(long n) {
    if (n < 2) return 0;
    for (long d = 2; d * d <= n; d++)
        if (n % d == 0) return 0;
    return 1;
}

static int collatz(long n) {
    int steps = 0;
    while (n != 1) {
        n = n % 2 ? 3 * n + 1 : n / 2;
        steps++;
    }
    return steps;
}

static void second_batch(void *arg) {
    long b = (long)arg;
    long sum = 0;
    for (long n = b * BLOCK; n < (b + 1) * BLOCK; n++)
        if (is_prime(n)) sum += 2 * n;
    results[b].doubled_sum = sum;
}

static void first_batch(void *arg) {
    long b = (long)arg;
    struct result r = {0, 0, -1, 0};
    for (long n = b * BLOCK; n < (b + 1) * BLOCK; n++) {
        r.primes += is_prime(n);
        if (n > 0) {
            int len = collatz(n);
            if (len > r.longest_len) {
                r.longest_len = len;
                r.longest_start = n;
            }
        }
    }
    results[b] = r;
}

static void spawner(void *arg) {
    (void)arg;
    for (long b = 0; b < BLOCKS; b++) pool_submit(&pool, second_batch, (void *)b);
}

int main(void) {
    pool_start(&pool);
    for (long b = 0; b < BLOCKS; b++) pool_submit(&pool, first_batch, (void *)b);
    pool_wait(&pool);
    pool_submit(&pool, spawner, NULL);
    pool_wait(&pool);
    pool_stop(&pool);

    printf("%-6s %-16s %7s %22s %14s\n", "block", "range", "primes", "longest collatz chain", "2 x prime sum");
    long total_primes = 0, total_sum = 0;
    struct result best = {0, 0, -1, 0};
    for (int b = 0; b < BLOCKS; b++) {
        total_primes += results[b].primes;
        total_sum += results[b].doubled_sum;
        if (results[b].longest_len > best.longest_len) best = results[b];
        if (b % 20 == 0)
            printf("%-6d %7d..%-7d %7d %13d from %-6ld %14ld\n", b, b * BLOCK, (b + 1) * BLOCK - 1, results[b].primes,
                   results[b].longest_len, results[b].longest_start, results[b].doubled_sum);
    }
    printf("primes below %d: %ld\n", BLOCKS * BLOCK, total_primes);
    printf("sum of those primes: %ld\n", total_sum / 2);
    printf("longest Collatz chain below %d: %d steps, from %ld\n", BLOCKS * BLOCK, best.longest_len, best.longest_start);
    return 0;
}
