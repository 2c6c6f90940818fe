/* seed_counter.c: a long computation that survives kill -9 through the seed interface.
 *
 * usage: seed_counter TOTAL EVERY PAUSE_US
 *   Runs steps 0 .. TOTAL-1, calls checkpoint() after every EVERY steps and sleeps PAUSE_US
 *   microseconds per step (so that a parent can kill it at any moment of a run).
 *
 * All state hangs off the persistent root (crthreads_root_get): the number of steps done, a
 * growing array built with realloc, a FIFO linked list of malloc'd nodes (each with a strdup'd
 * label and a malloc'd blob; the oldest node is freed at every third step), a running
 * accumulator, and a summary string replaced (free + strdup) every ten steps. Every value is a
 * pure function of the step number, so the program can check the whole structure.
 *
 * Checks (a failure prints "FAIL ..." on stderr and exits 1):
 *   - on a fresh start (restore() == 0) the root is all zero bytes; after a restore
 *     (restore() == 1) it carries the magic number written on the fresh start;
 *   - at start and at the end, the whole structure equals its recomputation for the steps done
 *     (array contents, list order, labels, blobs, accumulator, summary);
 *   - every checkpoint() returns 0.
 *
 * Output on stdout (unbuffered, so a killed run's lines are all there):
 *   start restored=R next=N    R = restore(), N = the step this run resumes at
 *   checkpoint N               after checkpoint() returned 0 with steps [0, N) done
 *   result ...                 the final state (several lines)
 *   done
 * For LD_PRELOAD the program is built without -lcrthreads: the crthreads functions are weak.
 */
#include "check.h"

#include <time.h>

#pragma weak checkpoint
#pragma weak restore
#pragma weak crthreads_root_get

#define MAGIC 0x5eedc0de0c0c0001ULL

struct node {
    long step;
    char *label;
    unsigned char *blob;
    size_t blob_len;
    struct node *next;
};

struct state {
    unsigned long long magic;
    long next;                /* steps [0, next) are done */
    unsigned long long *vals; /* vals[i] = value(i), grown with realloc */
    size_t len, cap;
    struct node *head, *tail; /* steps [next / 3, next), oldest first */
    long queued;
    unsigned long long acc;
    char *summary; /* "step S acc A" for the last S < next with S % 10 == 0 */
};

static unsigned long long value(long i) { /* splitmix64 */
    unsigned long long z = (unsigned long long)i * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static unsigned char blob_byte(unsigned long long v, size_t k) { return (unsigned char)((v >> (k % 8 * 8)) ^ k); }
static size_t blob_len(unsigned long long v) { return 1 + (size_t)(v % 6000); }
static void label_of(long i, char *buf, size_t n) { snprintf(buf, n, "item-%ld-%016llx", i, value(i)); }
static unsigned long long fold(unsigned long long acc, long i) { return acc * 31 + (value(i) >> 7); }

static void set_summary(struct state *s, long i) {
    char buf[80];
    snprintf(buf, sizeof buf, "step %ld acc %016llx", i, s->acc);
    free(s->summary);
    s->summary = strdup(buf);
    CHECK(s->summary != NULL, "strdup of the summary failed (errno %d)", errno);
}

static void step(struct state *s, long i) {
    unsigned long long v = value(i);
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        unsigned long long *p = realloc(s->vals, cap * sizeof *p);
        CHECK(p != NULL, "realloc of the array to %zu entries failed (errno %d)", cap, errno);
        s->vals = p;
        s->cap = cap;
    }
    s->vals[s->len++] = v;

    struct node *n = malloc(sizeof *n);
    CHECK(n != NULL, "malloc of a node failed (errno %d)", errno);
    char label[64];
    label_of(i, label, sizeof label);
    n->step = i;
    n->label = strdup(label);
    CHECK(n->label != NULL, "strdup of a label failed (errno %d)", errno);
    n->blob_len = blob_len(v);
    n->blob = malloc(n->blob_len);
    CHECK(n->blob != NULL, "malloc of a %zu-byte blob failed (errno %d)", n->blob_len, errno);
    for (size_t k = 0; k < n->blob_len; k++) n->blob[k] = blob_byte(v, k);
    n->next = NULL;
    if (s->tail)
        s->tail->next = n;
    else
        s->head = n;
    s->tail = n;
    s->queued++;
    if (i % 3 == 2) {
        struct node *old = s->head;
        s->head = old->next;
        if (!s->head) s->tail = NULL;
        free(old->label);
        free(old->blob);
        free(old);
        s->queued--;
    }

    s->acc = fold(s->acc, i);
    if (i % 10 == 0) set_summary(s, i);
    s->next = i + 1;
}

/* Checks the whole structure against its recomputation for steps [0, s->next). */
static void verify(const struct state *s, const char *when) {
    long n = s->next;
    CHECK(n >= 0, "%s: next = %ld", when, n);
    CHECK(s->len == (size_t)n && s->cap >= s->len, "%s: array len %zu cap %zu, expected len %ld", when, s->len,
          s->cap, n);
    unsigned long long acc = 0;
    char summary[80] = "";
    for (long i = 0; i < n; i++) {
        CHECK(s->vals[i] == value(i), "%s: vals[%ld] = %016llx, expected %016llx", when, i, s->vals[i], value(i));
        acc = fold(acc, i);
        if (i % 10 == 0) snprintf(summary, sizeof summary, "step %ld acc %016llx", i, acc);
    }
    CHECK(s->acc == acc, "%s: accumulator %016llx, expected %016llx", when, s->acc, acc);
    if (n == 0)
        CHECK(s->summary == NULL, "%s: a summary exists before any step", when);
    else
        CHECK(s->summary != NULL && strcmp(s->summary, summary) == 0, "%s: summary \"%s\", expected \"%s\"", when,
              s->summary ? s->summary : "(null)", summary);

    long first = n / 3, count = 0;
    const struct node *last = NULL;
    for (const struct node *p = s->head; p; p = p->next, count++) {
        long want = first + count;
        CHECK(want < n, "%s: the list holds more than the %ld expected nodes", when, n - first);
        CHECK(p->step == want, "%s: list node %ld holds step %ld, expected %ld", when, count, p->step, want);
        char label[64];
        label_of(want, label, sizeof label);
        CHECK(strcmp(p->label, label) == 0, "%s: label of step %ld is \"%s\", expected \"%s\"", when, want, p->label,
              label);
        unsigned long long v = value(want);
        CHECK(p->blob_len == blob_len(v), "%s: blob of step %ld has %zu bytes, expected %zu", when, want,
              p->blob_len, blob_len(v));
        for (size_t k = 0; k < p->blob_len; k++)
            CHECK(p->blob[k] == blob_byte(v, k), "%s: blob of step %ld differs at byte %zu", when, want, k);
        last = p;
    }
    CHECK(count == n - first && s->queued == count, "%s: list has %ld nodes (queued says %ld), expected %ld", when,
          count, s->queued, n - first);
    CHECK(s->tail == last, "%s: the tail pointer is not the last node", when);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    CHECK(argc == 4, "usage: seed_counter TOTAL EVERY PAUSE_US");
    long total = atol(argv[1]), every = atol(argv[2]), pause_us = atol(argv[3]);
    CHECK(total > 0 && every > 0 && pause_us >= 0, "bad arguments");
    CHECK(checkpoint && restore && crthreads_root_get && crthreads_last_error,
          "the crthreads functions are not available (library not loaded)");

    int restored = restore();
    CHECK(restored == 0 || restored == 1, "restore() returned %d (errno %d: %s)", restored, errno,
          last_error());
    struct state *s = crthreads_root_get(sizeof *s);
    CHECK(s != NULL, "crthreads_root_get(%zu) returned NULL (errno %d: %s)", sizeof *s, errno,
          last_error());
    if (!restored) {
        static const struct state zero;
        CHECK(memcmp(s, &zero, sizeof *s) == 0, "the root is not zeroed on a fresh start");
        s->magic = MAGIC;
    } else {
        CHECK(s->magic == MAGIC, "restored root has magic %016llx, expected %016llx", s->magic, MAGIC);
    }
    printf("start restored=%d next=%ld\n", restored, s->next);
    verify(s, restored ? "after restore" : "fresh start");

    struct timespec pause = {pause_us / 1000000, pause_us % 1000000 * 1000};
    while (s->next < total) {
        step(s, s->next);
        if (pause_us) nanosleep(&pause, NULL);
        if (s->next % every == 0 || s->next == total) {
            errno = 0;
            int rc = checkpoint();
            CHECK(rc == 0, "checkpoint() after step %ld returned %d (errno %d: %s)", s->next, rc, errno,
                  last_error());
            printf("checkpoint %ld\n", s->next);
        }
    }
    verify(s, "at the end");

    unsigned long long blob_sum = 0;
    for (const struct node *p = s->head; p; p = p->next)
        for (size_t k = 0; k < p->blob_len; k++) blob_sum += p->blob[k];
    printf("result steps=%ld len=%zu queued=%ld first=%ld acc=%016llx\n", s->next, s->len, s->queued,
           s->head ? s->head->step : -1L, s->acc);
    printf("result summary=%s\n", s->summary);
    printf("result label-first=%s label-last=%s\n", s->head->label, s->tail->label);
    printf("result blob-sum=%llu vals-last=%016llx\n", blob_sum, s->vals[s->len - 1]);
    printf("done\n");
    return 0;
}
