/*
 * tsp: exact travelling-salesman tours by parallel branch and bound, one instance per
 * iteration. Instance i has C cities at pseudo-random integer coordinates (from --seed and i);
 * distances are rounded-down Euclidean, so costs are exact integers.
 *
 * Parallelism: the tours start at city 0; the subtrees under each two-city prefix 0-a-b are the
 * tasks, claimed in order from a shared counter by N worker threads. The best tour so far (its
 * cost is the bound) lives under one mutex; a worker copies the bound into its own search every
 * few thousand nodes and offers each complete tour no worse than its copy. The worker that
 * finishes the last task of an instance appends the instance's optimum to the output file,
 * prints `iter <i>` and sets up the next instance, all under the mutex, then wakes the others.
 *
 * Determinism: the answer is the cheapest tour, and among tours of equal cost the
 * lexicographically smallest city sequence. A subtree is cut only when its lower bound is
 * strictly greater than the bound, and the bound is never below the optimum, so every optimal
 * tour is offered and the tie-break picks the same one whatever the thread count or the order
 * in which bounds improved. (How many nodes are searched does depend on scheduling; it is
 * reported on stderr only.)
 *
 * Lower bound of a partial tour: its cost plus, for the current city and every unvisited city,
 * the cheapest edge leaving that city (each of them is left exactly once more).
 *
 *   tsp [--threads N] [--iters I] [--size C] [--seed S] [--out FILE]
 */
#include "example.h"

static const char usage[] =
    "usage: tsp [--threads N] [--iters I] [--size C] [--seed S] [--out FILE]\n"
    "\n"
    "Solves I random travelling-salesman instances of C cities exactly, by branch and bound\n"
    "on N threads sharing the best bound under a mutex.\n"
    "\n"
    "  --threads N    worker threads, 1..1024 (default 4)\n"
    "  --iters I      instances, 1..1000000 (default 40)\n"
    "  --size C       cities per instance, 4..20 (default 16)\n"
    "  --seed S       seed of the city coordinates (default 1)\n"
    "  --out FILE     append `<i> <cost> <tour>` per instance, then the result line\n"
    "\n"
    "stdout: `iter <i>` as each instance is solved, then `result <16 hex digits>`.\n"
    "Exit status: 0 done, 1 runtime failure, 2 bad arguments.\n";

#define MAX_CITIES 20

/* Coordinates lie in [0, COORD_RANGE). */
#define COORD_RANGE 100000

/* A worker refreshes its copy of the bound after this many nodes. */
#define REFRESH_NODES 4096

/* Everything the threads share; `lock` guards all of it. The distance tables are written only
 * while no task of the instance is claimed or running. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t work; /* broadcast when an instance starts, and at the end */
    uint64_t seed;
    uint64_t instances;
    int n;
    uint64_t inst; /* the instance being solved; == instances when all are */
    int dist[MAX_CITIES][MAX_CITIES];
    int minout[MAX_CITIES]; /* the cheapest edge leaving each city */
    int ntasks;
    int next_task;
    int tasks_done;
    int best_cost;
    int best_tour[MAX_CITIES];
    uint64_t nodes; /* statistics only: depends on scheduling */
    uint64_t checksum;
    FILE *out;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER};

static int isqrt(uint64_t v) {
    uint64_t r = 0, bit = 1ull << 62;
    while (bit > v) {
        bit >>= 2;
    }
    while (bit != 0) {
        if (v >= r + bit) {
            v -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return (int)r;
}

/* Whether tour a is lexicographically smaller than tour b. */
static int tour_less(const int *a, const int *b, int n) {
    for (int i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return a[i] < b[i];
        }
    }
    return 0;
}

/* Sets up instance g.inst: cities, distances, tasks, and the greedy nearest-neighbour tour as
 * the first bound. Called with the lock held and no task running. */
static void setup_instance(void) {
    int n = g.n, x[MAX_CITIES], y[MAX_CITIES];
    for (int c = 0; c < n; c++) {
        x[c] = (int)(ex_hash3(g.seed, g.inst, 2 * (uint64_t)c) % COORD_RANGE);
        y[c] = (int)(ex_hash3(g.seed, g.inst, 2 * (uint64_t)c + 1) % COORD_RANGE);
    }
    for (int a = 0; a < n; a++) {
        g.minout[a] = INT32_MAX;
        for (int b = 0; b < n; b++) {
            int64_t dx = x[a] - x[b], dy = y[a] - y[b];
            g.dist[a][b] = isqrt((uint64_t)(dx * dx + dy * dy));
            if (a != b && g.dist[a][b] < g.minout[a]) {
                g.minout[a] = g.dist[a][b];
            }
        }
    }
    int seen[MAX_CITIES] = {0}, cur = 0, cost = 0;
    g.best_tour[0] = 0;
    seen[0] = 1;
    for (int i = 1; i < n; i++) {
        int next = -1;
        for (int c = 1; c < n; c++) {
            if (!seen[c] && (next < 0 || g.dist[cur][c] < g.dist[cur][next])) {
                next = c;
            }
        }
        seen[next] = 1;
        cost += g.dist[cur][next];
        g.best_tour[i] = cur = next;
    }
    g.best_cost = cost + g.dist[cur][0];
    g.ntasks = (n - 1) * (n - 2);
    g.next_task = 0;
    g.tasks_done = 0;
}

/* One worker's search of one task. */
struct search {
    int n;
    int bound; /* a copy of g.best_cost, refreshed now and then */
    int path[MAX_CITIES];
    uint64_t nodes;
    uint64_t until_refresh;
};

/* Offers the complete tour in s->path of cost `cost`. */
static void offer(struct search *s, int cost) {
    ex_pt(pthread_mutex_lock(&g.lock), "pthread_mutex_lock");
    if (cost < g.best_cost || (cost == g.best_cost && tour_less(s->path, g.best_tour, s->n))) {
        g.best_cost = cost;
        memcpy(g.best_tour, s->path, sizeof(int) * (size_t)s->n);
    }
    s->bound = g.best_cost;
    ex_pt(pthread_mutex_unlock(&g.lock), "pthread_mutex_unlock");
}

/* Extends s->path[0..depth) ending at `cur`, of cost `cost`; `rest` is the sum of minout over
 * the unvisited cities, whose set is `unvisited`. */
static void dfs(struct search *s, int depth, int cur, int cost, uint32_t unvisited, int rest) {
    s->nodes++;
    if (--s->until_refresh == 0) {
        s->until_refresh = REFRESH_NODES;
        ex_pt(pthread_mutex_lock(&g.lock), "pthread_mutex_lock");
        s->bound = g.best_cost;
        ex_pt(pthread_mutex_unlock(&g.lock), "pthread_mutex_unlock");
    }
    if (unvisited == 0) {
        int total = cost + g.dist[cur][0];
        if (total <= s->bound) {
            offer(s, total);
        }
        return;
    }
    for (int next = 1; next < s->n; next++) {
        if (!(unvisited & (1u << next))) {
            continue;
        }
        int c = cost + g.dist[cur][next];
        /* The child's bound: c + minout[next] + (rest - minout[next]). */
        if (c + rest > s->bound) {
            continue;
        }
        s->path[depth] = next;
        dfs(s, depth + 1, next, c, unvisited & ~(1u << next), rest - g.minout[next]);
    }
}

/* Searches task k: the tours that start 0-a-b. */
static void run_task(struct search *s, int k) {
    int n = g.n, a = 1 + k / (n - 2), b = 1 + k % (n - 2);
    if (b >= a) {
        b++; /* the (k mod (n-2))-th city of 1..n-1 other than a */
    }
    uint32_t unvisited = ((1u << n) - 1) & ~1u & ~(1u << a) & ~(1u << b);
    int rest = 0;
    for (int c = 1; c < n; c++) {
        if (unvisited & (1u << c)) {
            rest += g.minout[c];
        }
    }
    s->path[0] = 0;
    s->path[1] = a;
    s->path[2] = b;
    int cost = g.dist[0][a] + g.dist[a][b];
    if (cost + g.minout[b] + rest <= s->bound) {
        dfs(s, 3, b, cost, unvisited, rest);
    }
}

/* Records the solved instance and moves on. Called with the lock held, all tasks done. */
static void finish_instance(void) {
    char tour[MAX_CITIES * 3 + 1];
    size_t len = 0;
    for (int i = 0; i < g.n; i++) {
        len += (size_t)snprintf(tour + len, sizeof tour - len, i ? "-%d" : "%d", g.best_tour[i]);
    }
    ex_record(g.out, "%" PRIu64 " %d %s", g.inst, g.best_cost, tour);
    g.checksum = ex_fold(g.checksum, (uint64_t)g.best_cost);
    for (int i = 0; i < g.n; i++) {
        g.checksum = ex_fold(g.checksum, (uint64_t)g.best_tour[i]);
    }
    ex_iter(g.inst);
    if (++g.inst < g.instances) {
        setup_instance();
    }
    ex_pt(pthread_cond_broadcast(&g.work), "pthread_cond_broadcast");
}

static void *worker(void *arg) {
    struct search s = {.n = g.n, .until_refresh = REFRESH_NODES};
    ex_pt(pthread_mutex_lock(&g.lock), "pthread_mutex_lock");
    for (;;) {
        while (g.inst < g.instances && g.next_task == g.ntasks) {
            ex_pt(pthread_cond_wait(&g.work, &g.lock), "pthread_cond_wait");
        }
        if (g.inst == g.instances) {
            break;
        }
        int k = g.next_task++;
        s.bound = g.best_cost;
        s.nodes = 0;
        ex_pt(pthread_mutex_unlock(&g.lock), "pthread_mutex_unlock");

        run_task(&s, k);

        ex_pt(pthread_mutex_lock(&g.lock), "pthread_mutex_lock");
        g.nodes += s.nodes;
        if (++g.tasks_done == g.ntasks) {
            finish_instance();
        }
    }
    ex_pt(pthread_mutex_unlock(&g.lock), "pthread_mutex_unlock");
    (void)arg;
    return NULL;
}

int main(int argc, char **argv) {
    uint64_t threads = 4, instances = 40, cities = 16, seed = 1;
    const char *out_path = NULL;
    struct ex_args a = ex_args_init("tsp", usage, argc, argv);
    while (ex_next(&a)) {
        if (ex_flag(&a, "--threads")) {
            threads = ex_u64(&a, 1, 1024);
        } else if (ex_flag(&a, "--iters")) {
            instances = ex_u64(&a, 1, 1000000);
        } else if (ex_flag(&a, "--size")) {
            cities = ex_u64(&a, 4, MAX_CITIES);
        } else if (ex_flag(&a, "--seed")) {
            seed = ex_u64(&a, 0, UINT64_MAX);
        } else if (ex_flag(&a, "--out")) {
            out_path = a.value;
        } else {
            ex_unknown(&a);
        }
    }

    g.seed = seed;
    g.instances = instances;
    g.n = (int)cities;
    g.checksum = ex_fold(cities, instances);
    g.out = ex_open_out(out_path);
    setup_instance();
    fprintf(stderr, "tsp: %" PRIu64 " threads, %" PRIu64 " instances of %" PRIu64 " cities, seed %" PRIu64 "\n",
            threads, instances, cities, seed);
    double t0 = ex_now();

    pthread_t *tids = ex_calloc(threads, sizeof *tids);
    for (uint64_t t = 0; t < threads; t++) {
        ex_pt(pthread_create(&tids[t], NULL, worker, NULL), "pthread_create");
    }
    for (uint64_t t = 0; t < threads; t++) {
        ex_pt(pthread_join(tids[t], NULL), "pthread_join");
    }

    fprintf(stderr, "tsp: done in %.2f s, %" PRIu64 " search nodes\n", ex_now() - t0, g.nodes);
    ex_result(g.out, g.checksum);
    free(tids);
    return 0;
}
