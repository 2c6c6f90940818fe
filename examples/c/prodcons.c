/*
 * prodcons: producers and consumers (32 + 32 by default) around one bounded FIFO queue guarded
 * by a mutex and two condition variables (not full, not empty).
 *
 * The work is I blocks of M items; item `id` (0 .. I*M-1) is made by producer id mod P, which
 * makes its items in increasing id order, numbering them 0, 1, 2, ... (its sequence). Making an
 * item costs some rounds of mixing, and so does consuming it into its 64-bit hash.
 *
 * Checks: the queue is FIFO, so the consumers, all taking items under the queue's mutex, must
 * see each producer's items in sequence order with nothing lost or repeated: every dequeue
 * checks the item's sequence number against the next one expected from its producer, and at
 * the end every producer's count is checked. A failed check is a message and exit status 1.
 *
 * Output: consumers add each item's hash into its block's sum and xor under a second mutex,
 * the tally. A block is complete when all M of its items are in; complete blocks are recorded
 * strictly in block order (a block that completes early waits for the ones before it): the
 * consumer that completes block b, or the one before it, appends
 * `<b> <sum> <xor>` to the output file and prints `iter <b>` for each block now complete in
 * order, still holding the tally mutex.
 *
 * Determinism: sum and xor do not depend on the order items arrive in, and blocks are recorded
 * in block order, so the file and the result are the same for any thread count and schedule.
 *
 *   prodcons [--threads N] [--iters I] [--size M] [--capacity Q] [--seed S] [--out FILE]
 */
#include "example.h"

static const char usage[] =
    "usage: prodcons [--threads N] [--iters I] [--size M] [--capacity Q] [--seed S] [--out FILE]\n"
    "\n"
    "N/2 producers and N - N/2 consumers pass I*M items through one bounded queue (mutex and\n"
    "two condition variables); each producer's items are checked to arrive in order, once.\n"
    "\n"
    "  --threads N    producers plus consumers, 2..2048 (default 64: 32 + 32)\n"
    "  --iters I      blocks of items, 1..1000000 (default 100)\n"
    "  --size M       items per block, 1..10000000 (default 80000)\n"
    "  --capacity Q   queue capacity in items, 1..1000000 (default 64)\n"
    "  --seed S       seed of the item values (default 1)\n"
    "  --out FILE     append `<block> <sum> <xor>` per block, in block order, then the\n"
    "                 result line\n"
    "\n"
    "stdout: `iter <b>` as block b and every block before it are complete, then\n"
    "`result <16 hex digits>`.\n"
    "Exit status: 0 done, 1 runtime failure or failed check, 2 bad arguments.\n";

/* Rounds of mixing to make an item, and to consume one. */
#define PRODUCE_ROUNDS 100
#define CONSUME_ROUNDS 100

struct item {
    uint64_t id;
    uint64_t value;
    uint64_t seq;      /* the item's number among its producer's items */
    uint32_t producer;
};

static struct {
    pthread_mutex_t qlock;    /* guards the queue, producers_done and expect */
    pthread_cond_t not_full;  /* signalled when an item is taken */
    pthread_cond_t not_empty; /* signalled when an item is added; broadcast at the end */
    struct item *ring;        /* [capacity] */
    uint64_t capacity, head, count;
    uint64_t producers_done;
    uint64_t *expect; /* [producers] the next sequence number due from each producer */

    pthread_mutex_t tally; /* guards the block tallies, next_block, checksum and the output */
    uint64_t *block_count, *block_sum, *block_xor; /* [blocks] */
    uint64_t next_block;                           /* blocks recorded */
    uint64_t checksum;
    FILE *out;

    uint64_t producers, consumers, blocks, block_size, total, seed;
} g = {
    .qlock = PTHREAD_MUTEX_INITIALIZER,
    .not_full = PTHREAD_COND_INITIALIZER,
    .not_empty = PTHREAD_COND_INITIALIZER,
    .tally = PTHREAD_MUTEX_INITIALIZER,
};

static uint64_t produce(uint64_t id) {
    uint64_t v = ex_hash3(g.seed, id, 0);
    for (int r = 0; r < PRODUCE_ROUNDS; r++) {
        v = ex_mix(v);
    }
    return v;
}

static uint64_t consume(const struct item *it) {
    uint64_t h = it->value ^ it->id;
    for (int r = 0; r < CONSUME_ROUNDS; r++) {
        h = ex_mix(h);
    }
    return h;
}

static void *producer(void *arg) {
    uint32_t p = (uint32_t)(uintptr_t)arg;
    uint64_t seq = 0;
    for (uint64_t id = p; id < g.total; id += g.producers, seq++) {
        struct item it = {.id = id, .value = produce(id), .seq = seq, .producer = p};
        ex_pt(pthread_mutex_lock(&g.qlock), "pthread_mutex_lock");
        while (g.count == g.capacity) {
            ex_pt(pthread_cond_wait(&g.not_full, &g.qlock), "pthread_cond_wait");
        }
        g.ring[(g.head + g.count) % g.capacity] = it;
        g.count++;
        ex_pt(pthread_cond_signal(&g.not_empty), "pthread_cond_signal");
        ex_pt(pthread_mutex_unlock(&g.qlock), "pthread_mutex_unlock");
    }
    ex_pt(pthread_mutex_lock(&g.qlock), "pthread_mutex_lock");
    if (++g.producers_done == g.producers) {
        ex_pt(pthread_cond_broadcast(&g.not_empty), "pthread_cond_broadcast");
    }
    ex_pt(pthread_mutex_unlock(&g.qlock), "pthread_mutex_unlock");
    return NULL;
}

/* Adds a consumed item to its block and records the blocks now complete in order. */
static void tally(uint64_t id, uint64_t h) {
    ex_pt(pthread_mutex_lock(&g.tally), "pthread_mutex_lock");
    uint64_t b = id / g.block_size;
    g.block_sum[b] += h;
    g.block_xor[b] ^= h;
    g.block_count[b]++;
    while (g.next_block < g.blocks && g.block_count[g.next_block] == g.block_size) {
        uint64_t nb = g.next_block;
        ex_record(g.out, "%" PRIu64 " %016" PRIx64 " %016" PRIx64, nb, g.block_sum[nb], g.block_xor[nb]);
        g.checksum = ex_fold(ex_fold(g.checksum, g.block_sum[nb]), g.block_xor[nb]);
        ex_iter(nb);
        g.next_block++;
    }
    ex_pt(pthread_mutex_unlock(&g.tally), "pthread_mutex_unlock");
}

static void *consumer(void *arg) {
    uint64_t taken = 0;
    for (;;) {
        ex_pt(pthread_mutex_lock(&g.qlock), "pthread_mutex_lock");
        while (g.count == 0 && g.producers_done < g.producers) {
            ex_pt(pthread_cond_wait(&g.not_empty, &g.qlock), "pthread_cond_wait");
        }
        if (g.count == 0) {
            ex_pt(pthread_mutex_unlock(&g.qlock), "pthread_mutex_unlock");
            break;
        }
        struct item it = g.ring[g.head];
        g.head = (g.head + 1) % g.capacity;
        g.count--;
        if (it.producer >= g.producers || it.seq != g.expect[it.producer] ||
            it.id != it.producer + it.seq * g.producers) {
            ex_die("dequeued item %" PRIu64 " (sequence %" PRIu64 " of producer %" PRIu32
                   "), expected sequence %" PRIu64 ": the queue lost, repeated or reordered items",
                   it.id, it.seq, it.producer, it.producer < g.producers ? g.expect[it.producer] : 0);
        }
        g.expect[it.producer]++;
        ex_pt(pthread_cond_signal(&g.not_full), "pthread_cond_signal");
        ex_pt(pthread_mutex_unlock(&g.qlock), "pthread_mutex_unlock");

        tally(it.id, consume(&it));
        taken++;
    }
    *(uint64_t *)arg = taken;
    return NULL;
}

int main(int argc, char **argv) {
    uint64_t threads = 64, blocks = 100, block_size = 80000, capacity = 64, seed = 1;
    const char *out_path = NULL;
    struct ex_args a = ex_args_init("prodcons", usage, argc, argv);
    while (ex_next(&a)) {
        if (ex_flag(&a, "--threads")) {
            threads = ex_u64(&a, 2, 2048);
        } else if (ex_flag(&a, "--iters")) {
            blocks = ex_u64(&a, 1, 1000000);
        } else if (ex_flag(&a, "--size")) {
            block_size = ex_u64(&a, 1, 10000000);
        } else if (ex_flag(&a, "--capacity")) {
            capacity = ex_u64(&a, 1, 1000000);
        } else if (ex_flag(&a, "--seed")) {
            seed = ex_u64(&a, 0, UINT64_MAX);
        } else if (ex_flag(&a, "--out")) {
            out_path = a.value;
        } else {
            ex_unknown(&a);
        }
    }
    if (blocks * block_size > 1000000000ull) {
        ex_usage_error("`--iters` x `--size` must be at most 1000000000 items");
    }

    g.producers = threads / 2;
    g.consumers = threads - g.producers;
    g.blocks = blocks;
    g.block_size = block_size;
    g.total = blocks * block_size;
    g.capacity = capacity;
    g.seed = seed;
    g.checksum = ex_fold(blocks, block_size);
    g.ring = ex_calloc(capacity, sizeof *g.ring);
    g.expect = ex_calloc(g.producers, sizeof *g.expect);
    g.block_count = ex_calloc(blocks, sizeof *g.block_count);
    g.block_sum = ex_calloc(blocks, sizeof *g.block_sum);
    g.block_xor = ex_calloc(blocks, sizeof *g.block_xor);
    g.out = ex_open_out(out_path);
    fprintf(stderr,
            "prodcons: %" PRIu64 " producers, %" PRIu64 " consumers, %" PRIu64 " blocks of %" PRIu64
            " items, queue of %" PRIu64 ", seed %" PRIu64 "\n",
            g.producers, g.consumers, blocks, block_size, capacity, seed);
    double t0 = ex_now();

    pthread_t *ptids = ex_calloc(g.producers, sizeof *ptids);
    pthread_t *ctids = ex_calloc(g.consumers, sizeof *ctids);
    uint64_t *taken = ex_calloc(g.consumers, sizeof *taken);
    for (uint64_t c = 0; c < g.consumers; c++) {
        ex_pt(pthread_create(&ctids[c], NULL, consumer, &taken[c]), "pthread_create");
    }
    for (uint64_t p = 0; p < g.producers; p++) {
        ex_pt(pthread_create(&ptids[p], NULL, producer, (void *)(uintptr_t)p), "pthread_create");
    }
    for (uint64_t p = 0; p < g.producers; p++) {
        ex_pt(pthread_join(ptids[p], NULL), "pthread_join");
    }
    uint64_t consumed = 0, busiest = 0, idlest = UINT64_MAX;
    for (uint64_t c = 0; c < g.consumers; c++) {
        ex_pt(pthread_join(ctids[c], NULL), "pthread_join");
        consumed += taken[c];
        busiest = taken[c] > busiest ? taken[c] : busiest;
        idlest = taken[c] < idlest ? taken[c] : idlest;
    }

    for (uint64_t p = 0; p < g.producers; p++) {
        uint64_t made = (g.total - p + g.producers - 1) / g.producers;
        if (g.expect[p] != made) {
            ex_die("producer %" PRIu64 ": %" PRIu64 " items arrived, it made %" PRIu64, p, g.expect[p], made);
        }
    }
    if (consumed != g.total || g.next_block != blocks) {
        ex_die("%" PRIu64 " items consumed and %" PRIu64 " blocks recorded, expected %" PRIu64 " and %" PRIu64,
               consumed, g.next_block, g.total, blocks);
    }

    fprintf(stderr, "prodcons: done in %.2f s; consumers took %" PRIu64 " to %" PRIu64 " items each\n",
            ex_now() - t0, idlest, busiest);
    ex_result(g.out, ex_fold(g.checksum, g.total));
    free(taken);
    free(ctids);
    free(ptids);
    free(g.block_xor);
    free(g.block_sum);
    free(g.block_count);
    free(g.expect);
    free(g.ring);
    return 0;
}
