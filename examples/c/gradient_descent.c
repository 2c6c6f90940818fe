/*
 * gradient_descent: full-batch gradient descent for least-squares linear regression, with the
 * model under a pthread_rwlock.
 *
 * The samples (generated from --seed: features in [-1, 1) scaled per dimension so that the
 * problem is ill-conditioned and converges over hundreds of steps, targets from hidden weights
 * plus noise) are cut into fixed shards of SHARD samples, independent of the thread count.
 * Each step:
 *   - the N reader threads claim shards from a shared counter (mutex) and, holding the model's
 *     read lock together, compute each shard's gradient and squared error into that shard's
 *     own slot;
 *   - when the last shard is in, the writer (the main thread) takes the write lock, adds the
 *     shard gradients in shard order, applies the update, appends
 *     `<step> <loss> <weights checksum>` to the output file and prints `iter <step>`, all
 *     before releasing the write lock; then it opens the next step's shards.
 *
 * Determinism: a shard's gradient is a sum over its samples in order against the same model
 * version whichever reader computes it, and the writer adds the shards in shard order, so the
 * weights are bit-identical for any thread count; the result folds their bit patterns.
 *
 *   gradient_descent [--threads N] [--iters I] [--size M] [--dim D] [--seed S] [--out FILE]
 */
#include "example.h"

static const char usage[] =
    "usage: gradient_descent [--threads N] [--iters I] [--size M] [--dim D] [--seed S] [--out FILE]\n"
    "\n"
    "Least-squares linear regression on M generated samples of D features by full-batch\n"
    "gradient descent: N reader threads compute shard gradients under a pthread_rwlock's\n"
    "read lock, one writer applies each step under its write lock, in shard order.\n"
    "\n"
    "  --threads N    reader threads, 1..1024 (default 4)\n"
    "  --iters I      steps, 1..1000000 (default 1200)\n"
    "  --size M       samples, 1..10000000 (default 100000)\n"
    "  --dim D        features, 1..1024 (default 64)\n"
    "  --seed S       seed of the generated samples (default 1)\n"
    "  --out FILE     append `<step> <loss> <weights checksum>` per step, then the result line\n"
    "\n"
    "stdout: `iter <i>` as each step is applied, then `result <16 hex digits>`.\n"
    "Exit status: 0 done, 1 runtime failure, 2 bad arguments.\n";

/* Samples per shard: the unit of work and of reduction order. */
#define SHARD 2048

/* At most this many feature values (1 GiB of floats). */
#define MAX_COORDS (1ull << 28)

/* The step size; stable because every feature's scale is below 1 (see generate). */
#define RATE 2.5

static struct {
    pthread_rwlock_t model; /* guards w and step */
    double *w;              /* [dim] the weights */
    uint64_t step;          /* steps applied */

    pthread_mutex_t lock;   /* guards the shard counters and `finished` */
    pthread_cond_t ready;   /* broadcast when a step's shards can be claimed, and at the end */
    pthread_cond_t done;    /* signalled when a step's last shard is computed */
    uint64_t next_shard;    /* the next shard to claim; == nshards when all are claimed */
    uint64_t shards_done;
    int generating;         /* whether this round generates the samples */
    int finished;

    uint64_t n, dim, nshards, seed;
    float *x;       /* [n][dim] */
    float *y;       /* [n] */
    double *grad;   /* [nshards][dim], each shard's slot written by the reader that claimed it */
    double *sqerr;  /* [nshards] */
    FILE *out;
} g = {
    .model = PTHREAD_RWLOCK_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .ready = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};

static uint64_t weights_checksum(void) {
    uint64_t h = g.dim;
    for (uint64_t d = 0; d < g.dim; d++) {
        h = ex_fold(h, ex_bits(g.w[d]));
    }
    return h;
}

/* The samples of shard s. Feature d is uniform in [-scale_d, scale_d) with scale_d from 0.1
 * to 1, so the Hessian's eigenvalues spread over two orders of magnitude. */
static void generate(uint64_t s) {
    uint64_t end = (s + 1) * SHARD < g.n ? (s + 1) * SHARD : g.n;
    for (uint64_t i = s * SHARD; i < end; i++) {
        double target = 0;
        for (uint64_t d = 0; d < g.dim; d++) {
            double scale = g.dim > 1 ? 0.1 + 0.9 * (double)d / (double)(g.dim - 1) : 1.0;
            double v = (ex_unit(ex_hash3(g.seed, i, d)) * 2.0 - 1.0) * scale;
            double hidden = ex_unit(ex_hash3(~g.seed, d, 0)) * 4.0 - 2.0;
            g.x[i * g.dim + d] = (float)v;
            target += (double)g.x[i * g.dim + d] * hidden;
        }
        g.y[i] = (float)(target + (ex_unit(ex_hash3(g.seed, i, UINT64_MAX)) - 0.5) * 0.2);
    }
}

/* Shard s's gradient of 1/2 sum (x.w - y)^2 and its sum of squared errors, against the
 * current model. Called with the read lock held. */
static void gradient(uint64_t s) {
    uint64_t dim = g.dim, end = (s + 1) * SHARD < g.n ? (s + 1) * SHARD : g.n;
    double *gr = g.grad + s * dim, sq = 0;
    memset(gr, 0, sizeof(double) * dim);
    for (uint64_t i = s * SHARD; i < end; i++) {
        const float *xi = g.x + i * dim;
        double r = -(double)g.y[i];
        for (uint64_t d = 0; d < dim; d++) {
            r += (double)xi[d] * g.w[d];
        }
        sq += r * r;
        for (uint64_t d = 0; d < dim; d++) {
            gr[d] += r * (double)xi[d];
        }
    }
    g.sqerr[s] = sq;
}

static void *reader(void *arg) {
    ex_pt(pthread_mutex_lock(&g.lock), "pthread_mutex_lock");
    for (;;) {
        while (!g.finished && g.next_shard == g.nshards) {
            ex_pt(pthread_cond_wait(&g.ready, &g.lock), "pthread_cond_wait");
        }
        if (g.finished) {
            break;
        }
        uint64_t s = g.next_shard++;
        int generating = g.generating;
        ex_pt(pthread_mutex_unlock(&g.lock), "pthread_mutex_unlock");

        if (generating) {
            generate(s);
        } else {
            ex_pt(pthread_rwlock_rdlock(&g.model), "pthread_rwlock_rdlock");
            gradient(s);
            ex_pt(pthread_rwlock_unlock(&g.model), "pthread_rwlock_unlock");
        }

        ex_pt(pthread_mutex_lock(&g.lock), "pthread_mutex_lock");
        if (++g.shards_done == g.nshards) {
            ex_pt(pthread_cond_signal(&g.done), "pthread_cond_signal");
        }
    }
    ex_pt(pthread_mutex_unlock(&g.lock), "pthread_mutex_unlock");
    (void)arg;
    return NULL;
}

/* Opens every shard to the readers, for generating the samples or for a gradient, and waits
 * until each is done. */
static void run_round(int generating) {
    ex_pt(pthread_mutex_lock(&g.lock), "pthread_mutex_lock");
    g.generating = generating;
    g.next_shard = 0;
    g.shards_done = 0;
    ex_pt(pthread_cond_broadcast(&g.ready), "pthread_cond_broadcast");
    while (g.shards_done < g.nshards) {
        ex_pt(pthread_cond_wait(&g.done, &g.lock), "pthread_cond_wait");
    }
    ex_pt(pthread_mutex_unlock(&g.lock), "pthread_mutex_unlock");
}

/* The writer's part of a step: adds the shard gradients in shard order and applies them. */
static void apply_step(void) {
    ex_pt(pthread_rwlock_wrlock(&g.model), "pthread_rwlock_wrlock");
    double sq = 0;
    for (uint64_t s = 0; s < g.nshards; s++) {
        sq += g.sqerr[s];
    }
    for (uint64_t d = 0; d < g.dim; d++) {
        double sum = 0;
        for (uint64_t s = 0; s < g.nshards; s++) {
            sum += g.grad[s * g.dim + d];
        }
        g.w[d] -= RATE * sum / (double)g.n;
    }
    /* The loss is that of the weights the gradient was computed at. */
    ex_record(g.out, "%" PRIu64 " %.17g %016" PRIx64, g.step, sq / (2.0 * (double)g.n), weights_checksum());
    ex_iter(g.step);
    g.step++;
    ex_pt(pthread_rwlock_unlock(&g.model), "pthread_rwlock_unlock");
}

int main(int argc, char **argv) {
    uint64_t threads = 4, steps = 1200, n = 100000, dim = 64, seed = 1;
    const char *out_path = NULL;
    struct ex_args a = ex_args_init("gradient_descent", usage, argc, argv);
    while (ex_next(&a)) {
        if (ex_flag(&a, "--threads")) {
            threads = ex_u64(&a, 1, 1024);
        } else if (ex_flag(&a, "--iters")) {
            steps = ex_u64(&a, 1, 1000000);
        } else if (ex_flag(&a, "--size")) {
            n = ex_u64(&a, 1, 10000000);
        } else if (ex_flag(&a, "--dim")) {
            dim = ex_u64(&a, 1, 1024);
        } else if (ex_flag(&a, "--seed")) {
            seed = ex_u64(&a, 0, UINT64_MAX);
        } else if (ex_flag(&a, "--out")) {
            out_path = a.value;
        } else {
            ex_unknown(&a);
        }
    }
    if (n * dim > MAX_COORDS) {
        ex_usage_error("`--size` x `--dim` must be at most %llu feature values", MAX_COORDS);
    }

    g.n = n;
    g.dim = dim;
    g.seed = seed;
    g.nshards = (n + SHARD - 1) / SHARD;
    g.next_shard = g.nshards;
    g.x = ex_calloc(n * dim, sizeof *g.x);
    g.y = ex_calloc(n, sizeof *g.y);
    g.w = ex_calloc(dim, sizeof *g.w);
    g.grad = ex_calloc(g.nshards * dim, sizeof *g.grad);
    g.sqerr = ex_calloc(g.nshards, sizeof *g.sqerr);
    g.out = ex_open_out(out_path);
    fprintf(stderr,
            "gradient_descent: %" PRIu64 " reader threads, %" PRIu64 " samples of %" PRIu64 " features, %" PRIu64
            " steps, seed %" PRIu64 "\n",
            threads, n, dim, steps, seed);
    double t0 = ex_now();

    pthread_t *tids = ex_calloc(threads, sizeof *tids);
    for (uint64_t t = 0; t < threads; t++) {
        ex_pt(pthread_create(&tids[t], NULL, reader, NULL), "pthread_create");
    }
    run_round(1);
    while (g.step < steps) {
        run_round(0);
        apply_step();
    }
    ex_pt(pthread_mutex_lock(&g.lock), "pthread_mutex_lock");
    g.finished = 1;
    ex_pt(pthread_cond_broadcast(&g.ready), "pthread_cond_broadcast");
    ex_pt(pthread_mutex_unlock(&g.lock), "pthread_mutex_unlock");
    for (uint64_t t = 0; t < threads; t++) {
        ex_pt(pthread_join(tids[t], NULL), "pthread_join");
    }

    fprintf(stderr, "gradient_descent: done in %.2f s\n", ex_now() - t0);
    ex_result(g.out, ex_fold(weights_checksum(), g.step));
    free(tids);
    free(g.sqerr);
    free(g.grad);
    free(g.w);
    free(g.y);
    free(g.x);
    return 0;
}
