/*
 * counter: the smallest example. N threads share K counters and one mutex. A thread claims the
 * next increment number u under the mutex, computes its increment from u outside it (a few
 * hundred rounds of mixing: the work), then adds it to counter u mod K under the mutex again.
 * Every `--size` increments make an iteration: the thread that applies the last increment of
 * iteration i appends the counters' checksum to the output file and prints `iter <i>`, still
 * holding the mutex, then wakes the threads waiting to claim increments of iteration i+1.
 *
 * Determinism: increments of iteration i+1 are claimed only once iteration i is applied in
 * full, so the counters at the end of iteration i hold exactly the increments 0 .. (i+1)M-1,
 * whatever the thread count or order; addition does the rest.
 *
 *   counter [--threads N] [--iters I] [--size M] [--counters K] [--out FILE]
 */
#include "example.h"

static const char usage[] =
    "usage: counter [--threads N] [--iters I] [--size M] [--counters K] [--out FILE]\n"
    "\n"
    "N threads increment K shared counters under one mutex, M increments per iteration.\n"
    "\n"
    "  --threads N    worker threads, 1..1024 (default 4)\n"
    "  --iters I      iterations, 1..1000000 (default 100)\n"
    "  --size M       increments per iteration, 1..100000000 (default 100000)\n"
    "  --counters K   shared counters, 1..4096 (default 16)\n"
    "  --out FILE     append `<i> <counters checksum>` per iteration, then the result line\n"
    "\n"
    "stdout: `iter <i>` as each iteration completes, then `result <16 hex digits>`.\n"
    "Exit status: 0 done, 1 runtime failure, 2 bad arguments.\n";

/* Rounds of mixing per increment: the work done outside the mutex. */
#define WORK_ROUNDS 400

/* Everything the threads share; `lock` guards all of it. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t next_iter; /* signalled when an iteration completes */
    uint64_t *counters;       /* [ncounters] */
    uint64_t ncounters;
    uint64_t per_iter;
    uint64_t iters;
    uint64_t iter;    /* the iteration being worked on; == iters when all are done */
    uint64_t next;    /* the next increment number to claim */
    uint64_t applied; /* increments applied in the current iteration */
    FILE *out;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .next_iter = PTHREAD_COND_INITIALIZER};

static uint64_t counters_checksum(void) {
    uint64_t h = g.ncounters;
    for (uint64_t k = 0; k < g.ncounters; k++) {
        h = ex_fold(h, g.counters[k]);
    }
    return h;
}

/* The increment of number u. */
static uint64_t work(uint64_t u) {
    uint64_t v = u;
    for (int r = 0; r < WORK_ROUNDS; r++) {
        v = ex_mix(v);
    }
    return v >> 40;
}

static void *worker(void *arg) {
    uint64_t mine = 0;
    ex_pt(pthread_mutex_lock(&g.lock), "pthread_mutex_lock");
    for (;;) {
        /* Wait while every increment of the current iteration is claimed but not all applied. */
        while (g.iter < g.iters && g.next == (g.iter + 1) * g.per_iter) {
            ex_pt(pthread_cond_wait(&g.next_iter, &g.lock), "pthread_cond_wait");
        }
        if (g.iter == g.iters) {
            break;
        }
        uint64_t u = g.next++;
        ex_pt(pthread_mutex_unlock(&g.lock), "pthread_mutex_unlock");

        uint64_t v = work(u);

        ex_pt(pthread_mutex_lock(&g.lock), "pthread_mutex_lock");
        g.counters[u % g.ncounters] += v;
        mine++;
        if (++g.applied == g.per_iter) {
            ex_record(g.out, "%" PRIu64 " %016" PRIx64, g.iter, counters_checksum());
            ex_iter(g.iter);
            g.iter++;
            g.applied = 0;
            ex_pt(pthread_cond_broadcast(&g.next_iter), "pthread_cond_broadcast");
        }
    }
    ex_pt(pthread_mutex_unlock(&g.lock), "pthread_mutex_unlock");
    *(uint64_t *)arg = mine;
    return NULL;
}

int main(int argc, char **argv) {
    uint64_t threads = 4, iters = 100, per_iter = 100000, ncounters = 16;
    const char *out_path = NULL;
    struct ex_args a = ex_args_init("counter", usage, argc, argv);
    while (ex_next(&a)) {
        if (ex_flag(&a, "--threads")) {
            threads = ex_u64(&a, 1, 1024);
        } else if (ex_flag(&a, "--iters")) {
            iters = ex_u64(&a, 1, 1000000);
        } else if (ex_flag(&a, "--size")) {
            per_iter = ex_u64(&a, 1, 100000000);
        } else if (ex_flag(&a, "--counters")) {
            ncounters = ex_u64(&a, 1, 4096);
        } else if (ex_flag(&a, "--out")) {
            out_path = a.value;
        } else {
            ex_unknown(&a);
        }
    }

    g.counters = ex_calloc(ncounters, sizeof *g.counters);
    g.ncounters = ncounters;
    g.per_iter = per_iter;
    g.iters = iters;
    g.out = ex_open_out(out_path);
    fprintf(stderr, "counter: %" PRIu64 " threads, %" PRIu64 " iterations of %" PRIu64 " increments on %" PRIu64
                    " counters\n",
            threads, iters, per_iter, ncounters);
    double t0 = ex_now();

    pthread_t *tids = ex_calloc(threads, sizeof *tids);
    uint64_t *done = ex_calloc(threads, sizeof *done);
    for (uint64_t t = 0; t < threads; t++) {
        ex_pt(pthread_create(&tids[t], NULL, worker, &done[t]), "pthread_create");
    }
    uint64_t sum = 0;
    for (uint64_t t = 0; t < threads; t++) {
        ex_pt(pthread_join(tids[t], NULL), "pthread_join");
        sum += done[t];
    }
    if (sum != iters * per_iter) {
        ex_die("the threads made %" PRIu64 " increments, expected %" PRIu64, sum, iters * per_iter);
    }

    fprintf(stderr, "counter: done in %.2f s\n", ex_now() - t0);
    ex_result(g.out, ex_fold(counters_checksum(), sum));
    free(done);
    free(tids);
    free(g.counters);
    return 0;
}
