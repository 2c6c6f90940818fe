/*
 * kmeans: Lloyd's k-means on N worker threads that meet at a pthread_barrier.
 *
 * The points (generated around K pseudo-random centres from --seed) are cut into fixed
 * partitions of CHUNK points, independent of the thread count; thread t owns the partitions
 * t, t+N, t+2N, ... Each iteration has three phases separated by the barrier:
 *   1. assign: each thread assigns the points of its partitions to their nearest centroid (ties
 *      to the lower index) and sums them per partition and cluster;
 *   2. reduce: thread t computes the new centroids of clusters t, t+N, ... by adding the
 *      partition sums in partition order (a cluster left empty keeps its centroid);
 *   3. record: thread 0, under the journal mutex, adds up the partitions' inertia and moved
 *      points in partition order, appends `<i> <inertia> <moved> <centroids checksum>` to the
 *      output file, prints `iter <i>` and advances the iteration count.
 *
 * Determinism: every floating-point sum runs over the same values in the same order whatever
 * the thread count (within a partition in point order, across partitions in partition order),
 * so the centroids are bit-identical; the result folds their bit patterns.
 *
 *   kmeans [--threads N] [--iters I] [--size P] [--k K] [--dim D] [--seed S] [--out FILE]
 */
#include "example.h"

static const char usage[] =
    "usage: kmeans [--threads N] [--iters I] [--size P] [--k K] [--dim D] [--seed S] [--out FILE]\n"
    "\n"
    "Lloyd's k-means of P generated points in D dimensions into K clusters, on N threads\n"
    "that meet at a barrier; partitions and reduction order are fixed, so the centroids are\n"
    "bit-identical for any N.\n"
    "\n"
    "  --threads N    worker threads, 1..1024 (default 4)\n"
    "  --iters I      iterations, 1..1000000 (default 100)\n"
    "  --size P       points, 1..10000000 (default 300000)\n"
    "  --k K          clusters, 1..1024 and at most P (default 16)\n"
    "  --dim D        dimensions, 1..256 (default 32)\n"
    "  --seed S       seed of the generated points (default 1)\n"
    "  --out FILE     append `<i> <inertia> <moved> <centroids checksum>` per iteration,\n"
    "                 then the result line\n"
    "\n"
    "stdout: `iter <i>` as each iteration completes, then `result <16 hex digits>`.\n"
    "Exit status: 0 done, 1 runtime failure, 2 bad arguments.\n";

/* Points per partition: the unit of work and of reduction order. */
#define CHUNK 4096

/* At most this many coordinates (1 GiB of floats). */
#define MAX_COORDS (1ull << 28)

static struct {
    pthread_barrier_t barrier;
    pthread_mutex_t journal; /* guards iter, the record and the iteration line */
    uint64_t n, k, dim, iters, seed, threads, nchunks;
    float *points;          /* [n][dim] */
    uint32_t *assign;       /* [n]; UINT32_MAX before the first assignment */
    double *centroids;      /* [k][dim] */
    double *chunk_sum;      /* [nchunks][k][dim] */
    uint64_t *chunk_count;  /* [nchunks][k] */
    double *chunk_inertia;  /* [nchunks] */
    uint64_t *chunk_moved;  /* [nchunks] */
    uint64_t iter;          /* iterations completed */
    FILE *out;
} g = {.journal = PTHREAD_MUTEX_INITIALIZER};

static void barrier(void) {
    int rc = pthread_barrier_wait(&g.barrier);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) {
        ex_pt(rc, "pthread_barrier_wait");
    }
}

static uint64_t centroids_checksum(void) {
    uint64_t h = ex_fold(g.k, g.dim);
    for (uint64_t j = 0; j < g.k * g.dim; j++) {
        h = ex_fold(h, ex_bits(g.centroids[j]));
    }
    return h;
}

/* Generates the points of partition c: each around one of k centres in [-10, 10)^dim, with
 * uniform noise in [-4, 4) per coordinate. */
static void generate(uint64_t c) {
    uint64_t end = (c + 1) * CHUNK < g.n ? (c + 1) * CHUNK : g.n;
    for (uint64_t i = c * CHUNK; i < end; i++) {
        uint64_t centre = ex_hash3(g.seed, i, UINT64_MAX) % g.k;
        for (uint64_t d = 0; d < g.dim; d++) {
            double at = ex_unit(ex_hash3(~g.seed, centre, d)) * 20.0 - 10.0;
            double noise = ex_unit(ex_hash3(g.seed, i, d)) * 8.0 - 4.0;
            g.points[i * g.dim + d] = (float)(at + noise);
        }
        g.assign[i] = UINT32_MAX;
    }
}

/* Phase 1 for partition c. */
static void assign_chunk(uint64_t c) {
    uint64_t k = g.k, dim = g.dim;
    double *sum = g.chunk_sum + c * k * dim;
    uint64_t *count = g.chunk_count + c * k;
    memset(sum, 0, sizeof(double) * k * dim);
    memset(count, 0, sizeof(uint64_t) * k);
    double inertia = 0;
    uint64_t moved = 0;
    uint64_t end = (c + 1) * CHUNK < g.n ? (c + 1) * CHUNK : g.n;
    for (uint64_t i = c * CHUNK; i < end; i++) {
        const float *p = g.points + i * dim;
        uint64_t best = 0;
        double best_d = 0;
        for (uint64_t j = 0; j < k; j++) {
            const double *m = g.centroids + j * dim;
            double d2 = 0;
            for (uint64_t d = 0; d < dim; d++) {
                double diff = (double)p[d] - m[d];
                d2 += diff * diff;
            }
            if (j == 0 || d2 < best_d) {
                best = j;
                best_d = d2;
            }
        }
        if (g.assign[i] != best) {
            moved++;
            g.assign[i] = (uint32_t)best;
        }
        inertia += best_d;
        count[best]++;
        for (uint64_t d = 0; d < dim; d++) {
            sum[best * dim + d] += (double)p[d];
        }
    }
    g.chunk_inertia[c] = inertia;
    g.chunk_moved[c] = moved;
}

/* Phase 2 for cluster j. */
static void reduce_cluster(uint64_t j) {
    uint64_t count = 0;
    for (uint64_t c = 0; c < g.nchunks; c++) {
        count += g.chunk_count[c * g.k + j];
    }
    if (count == 0) {
        return;
    }
    for (uint64_t d = 0; d < g.dim; d++) {
        double s = 0;
        for (uint64_t c = 0; c < g.nchunks; c++) {
            s += g.chunk_sum[(c * g.k + j) * g.dim + d];
        }
        g.centroids[j * g.dim + d] = s / (double)count;
    }
}

/* Phase 3, on thread 0. */
static void record(void) {
    ex_pt(pthread_mutex_lock(&g.journal), "pthread_mutex_lock");
    double inertia = 0;
    uint64_t moved = 0;
    for (uint64_t c = 0; c < g.nchunks; c++) {
        inertia += g.chunk_inertia[c];
        moved += g.chunk_moved[c];
    }
    ex_record(g.out, "%" PRIu64 " %.17g %" PRIu64 " %016" PRIx64, g.iter, inertia, moved, centroids_checksum());
    ex_iter(g.iter);
    g.iter++;
    ex_pt(pthread_mutex_unlock(&g.journal), "pthread_mutex_unlock");
}

static void *worker(void *arg) {
    uint64_t t = (uint64_t)(uintptr_t)arg;
    for (uint64_t c = t; c < g.nchunks; c += g.threads) {
        generate(c);
    }
    barrier();
    if (t == 0) {
        /* The first centroids: k points spread over the input. */
        for (uint64_t j = 0; j < g.k; j++) {
            const float *p = g.points + (j * g.n / g.k) * g.dim;
            for (uint64_t d = 0; d < g.dim; d++) {
                g.centroids[j * g.dim + d] = (double)p[d];
            }
        }
    }
    barrier();
    for (uint64_t it = 0; it < g.iters; it++) {
        for (uint64_t c = t; c < g.nchunks; c += g.threads) {
            assign_chunk(c);
        }
        barrier();
        for (uint64_t j = t; j < g.k; j += g.threads) {
            reduce_cluster(j);
        }
        barrier();
        if (t == 0) {
            record();
        }
        barrier();
    }
    return NULL;
}

int main(int argc, char **argv) {
    uint64_t threads = 4, iters = 100, n = 300000, k = 16, dim = 32, seed = 1;
    const char *out_path = NULL;
    struct ex_args a = ex_args_init("kmeans", usage, argc, argv);
    while (ex_next(&a)) {
        if (ex_flag(&a, "--threads")) {
            threads = ex_u64(&a, 1, 1024);
        } else if (ex_flag(&a, "--iters")) {
            iters = ex_u64(&a, 1, 1000000);
        } else if (ex_flag(&a, "--size")) {
            n = ex_u64(&a, 1, 10000000);
        } else if (ex_flag(&a, "--k")) {
            k = ex_u64(&a, 1, 1024);
        } else if (ex_flag(&a, "--dim")) {
            dim = ex_u64(&a, 1, 256);
        } else if (ex_flag(&a, "--seed")) {
            seed = ex_u64(&a, 0, UINT64_MAX);
        } else if (ex_flag(&a, "--out")) {
            out_path = a.value;
        } else {
            ex_unknown(&a);
        }
    }
    if (k > n) {
        ex_usage_error("`--k` (%" PRIu64 ") must not exceed `--size` (%" PRIu64 " points)", k, n);
    }
    if (n * dim > MAX_COORDS) {
        ex_usage_error("`--size` x `--dim` must be at most %llu coordinates", MAX_COORDS);
    }

    g.n = n;
    g.k = k;
    g.dim = dim;
    g.iters = iters;
    g.seed = seed;
    g.threads = threads;
    g.nchunks = (n + CHUNK - 1) / CHUNK;
    g.points = ex_calloc(n * dim, sizeof *g.points);
    g.assign = ex_calloc(n, sizeof *g.assign);
    g.centroids = ex_calloc(k * dim, sizeof *g.centroids);
    g.chunk_sum = ex_calloc(g.nchunks * k * dim, sizeof *g.chunk_sum);
    g.chunk_count = ex_calloc(g.nchunks * k, sizeof *g.chunk_count);
    g.chunk_inertia = ex_calloc(g.nchunks, sizeof *g.chunk_inertia);
    g.chunk_moved = ex_calloc(g.nchunks, sizeof *g.chunk_moved);
    g.out = ex_open_out(out_path);
    ex_pt(pthread_barrier_init(&g.barrier, NULL, (unsigned)threads), "pthread_barrier_init");
    fprintf(stderr,
            "kmeans: %" PRIu64 " threads, %" PRIu64 " points in %" PRIu64 " dimensions, k %" PRIu64 ", %" PRIu64
            " iterations, seed %" PRIu64 "\n",
            threads, n, dim, k, iters, seed);
    double t0 = ex_now();

    pthread_t *tids = ex_calloc(threads, sizeof *tids);
    for (uint64_t t = 0; t < threads; t++) {
        ex_pt(pthread_create(&tids[t], NULL, worker, (void *)(uintptr_t)t), "pthread_create");
    }
    for (uint64_t t = 0; t < threads; t++) {
        ex_pt(pthread_join(tids[t], NULL), "pthread_join");
    }
    if (g.iter != iters) {
        ex_die("%" PRIu64 " iterations recorded, expected %" PRIu64, g.iter, iters);
    }

    fprintf(stderr, "kmeans: done in %.2f s\n", ex_now() - t0);
    ex_result(g.out, ex_fold(centroids_checksum(), g.iter));
    ex_pt(pthread_barrier_destroy(&g.barrier), "pthread_barrier_destroy");
    free(tids);
    free(g.chunk_moved);
    free(g.chunk_inertia);
    free(g.chunk_count);
    free(g.chunk_sum);
    free(g.centroids);
    free(g.assign);
    free(g.points);
    return 0;
}
