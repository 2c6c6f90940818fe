/* stress.c: many threads allocating, checking and freeing at once.
 *
 * THREADS threads each run OPS random operations on a private table of blocks: allocate (malloc,
 * calloc checked for zeroes, memalign / posix_memalign / aligned_alloc checked for alignment,
 * realloc(NULL), reallocarray(NULL)), free, realloc to another size (the kept prefix checked),
 * and swap a block through one of a few shared mailboxes, so that blocks allocated by one thread
 * are checked, resized and freed by another. Every block carries a header (tag, size, checksum)
 * and a position-dependent byte pattern derived from the tag, checked before every free and
 * realloc; free must leave errno unchanged. Sizes are mostly small, with a tail up to 256 KiB
 * (page runs).
 * Then CROWD threads (more than the allocator's 256 thread caches) are alive at once: each
 * allocates blocks, waits for all the others at a barrier, checks and frees half of its blocks and
 * leaves the other half for the main thread to check and free after the thread has exited; a
 * pthread key destructor, run as each of them exits, checks and frees one more block and
 * allocates and frees another (the allocator must still work that late in a thread's life).
 * At the end every block has been freed exactly once (allocation and free counts match).
 * usage: stress MODE [THREADS [OPS [SEED]]]  (defaults 8, 40000, 1; MODE is persistent or volatile)
 */
#include "check.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

struct hdr {
    uint64_t tag;
    uint32_t size;
    uint32_t check;
};
#define MIN_SIZE sizeof(struct hdr)
#define SLOTS 256
#define MAILBOXES 16
#define CROWD 300
#define CROWD_BLOCKS 16

static _Atomic(struct hdr *) mailbox[MAILBOXES];
static atomic_ulong allocs, frees, passed;
/* Frees that changed errno (counted, and reported at the end so the other checks still run). */
static atomic_ulong errno_changed;
static int first_errno;
static const char *first_errno_when;
static unsigned long ops_per_thread = 40000;
static uint64_t seed = 1;

static uint32_t checksum(uint64_t tag, uint32_t size) { return (uint32_t)(tag * 0x9E3779B97F4A7C15ULL >> 32) ^ size; }

static inline unsigned char pat(uint64_t tag, size_t i) { return (unsigned char)(tag + i + (i >> 8) * 13u); }

struct rng {
    uint64_t s;
};
static uint64_t rnd(struct rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

static size_t rnd_size(struct rng *r) {
    unsigned k = (unsigned)(rnd(r) % 1000);
    if (k < 850) return MIN_SIZE + rnd(r) % 241;
    if (k < 970) return 257 + rnd(r) % (8192 - 257);
    if (k < 995) return 8193 + rnd(r) % (65536 - 8193);
    return 65537 + rnd(r) % (262144 - 65537);
}

static void fill(struct hdr *h, size_t from, size_t to) {
    unsigned char *p = (unsigned char *)h;
    if (from < MIN_SIZE) from = MIN_SIZE;
    for (size_t i = from; i < to; i++) p[i] = pat(h->tag, i);
}

/* Checks the header and the pattern of the first `n` bytes (all of them if n is 0). */
static void verify(const struct hdr *h, size_t n, const char *when) {
    CHECK(h->check == checksum(h->tag, h->size), "block %p %s: header corrupt (tag %#llx size %u check %#x)",
          (const void *)h, when, (unsigned long long)h->tag, h->size, h->check);
    if (n == 0 || n > h->size) n = h->size;
    const unsigned char *p = (const unsigned char *)h;
    unsigned char diff = 0;
    for (size_t i = MIN_SIZE; i < n; i++) diff |= (unsigned char)(p[i] ^ pat(h->tag, i));
    if (!diff) return;
    for (size_t i = MIN_SIZE; i < n; i++)
        CHECK(p[i] == pat(h->tag, i), "block %p (%u bytes, tag %#llx) %s: byte %zu is %#x, expected %#x",
              (const void *)h, h->size, (unsigned long long)h->tag, when, i, p[i], pat(h->tag, i));
}

static struct hdr *allocate(struct rng *r, uint64_t tag) {
    size_t n = rnd_size(r);
    unsigned k = (unsigned)(rnd(r) % 100);
    struct hdr *h;
    if (k < 55) {
        h = malloc(n);
        CHECK(h != NULL, "malloc(%zu) failed (errno %d)", n, errno);
    } else if (k < 70) {
        h = calloc(1, n);
        CHECK(h != NULL, "calloc(1, %zu) failed (errno %d)", n, errno);
        const unsigned char *p = (const unsigned char *)h;
        unsigned char any = 0;
        for (size_t i = 0; i < n; i++) any |= p[i];
        CHECK(!any, "calloc(1, %zu) = %p is not zeroed", n, (void *)h);
    } else if (k < 85) {
        size_t a = (size_t)16 << (rnd(r) % 9);
        switch (k % 3) {
        case 0: h = memalign(a, n); break;
        case 1: h = aligned_alloc(a, n); break;
        default: {
            void *p = NULL;
            int rc = posix_memalign(&p, a, n);
            CHECK(rc == 0, "posix_memalign(&p, %zu, %zu) returned %d", a, n, rc);
            h = p;
        }
        }
        CHECK(h != NULL, "aligned allocation (%zu, %zu) failed (errno %d)", a, n, errno);
        CHECK((uintptr_t)h % a == 0, "aligned allocation (%zu, %zu) = %p is misaligned", a, n, (void *)h);
    } else if (k < 95) {
        h = realloc(NULL, n);
        CHECK(h != NULL, "realloc(NULL, %zu) failed (errno %d)", n, errno);
    } else {
        h = reallocarray(NULL, 1, n);
        CHECK(h != NULL, "reallocarray(NULL, 1, %zu) failed (errno %d)", n, errno);
    }
    CHECK(((uintptr_t)h & 15) == 0, "allocation of %zu bytes = %p is not 16-aligned", n, (void *)h);
    h->tag = tag;
    h->size = (uint32_t)n;
    h->check = checksum(tag, h->size);
    fill(h, 0, n);
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return h;
}

static void release(struct hdr *h, const char *when) {
    verify(h, 0, when);
    CHECK(malloc_usable_size(h) >= h->size, "malloc_usable_size(%p) = %zu < %u", (void *)h, malloc_usable_size(h),
          h->size);
    memset(h, 0xdb, MIN_SIZE); /* a later double free or use is caught by the header check */
    errno = 4242;
    free(h);
    if (errno != 4242 && atomic_fetch_add(&errno_changed, 1) == 0) {
        first_errno = errno;
        first_errno_when = when;
    }
    atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
}

static struct hdr *resize(struct rng *r, struct hdr *h) {
    verify(h, 0, "before realloc");
    size_t old = h->size, n = rnd_size(r);
    struct hdr *q = (rnd(r) % 4) ? realloc(h, n) : reallocarray(h, n, 1);
    CHECK(q != NULL, "realloc(%p, %zu) failed (errno %d)", (void *)h, n, errno);
    CHECK(((uintptr_t)q & 15) == 0, "realloc to %zu bytes = %p is not 16-aligned", n, (void *)q);
    CHECK(q->check == checksum(q->tag, (uint32_t)old), "realloc(%zu -> %zu) moved the block and lost its header", old,
          n);
    q->size = (uint32_t)(old < n ? old : n);
    q->check = checksum(q->tag, q->size);
    verify(q, 0, "after realloc (kept prefix)");
    q->size = (uint32_t)n;
    q->check = checksum(q->tag, q->size);
    if (n > old) fill(q, old, n);
    return q;
}

static void *worker(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    struct rng r = {seed * 0x9E3779B97F4A7C15ULL + id * 0xBF58476D1CE4E5B9ULL + 1};
    struct hdr *slot[SLOTS] = {0};
    uint64_t next_tag = (uint64_t)id << 40;
    for (unsigned long op = 0; op < ops_per_thread; op++) {
        unsigned i = (unsigned)(rnd(&r) % SLOTS);
        unsigned k = (unsigned)(rnd(&r) % 100);
        if (!slot[i]) {
            if (k < 85) {
                slot[i] = allocate(&r, ++next_tag);
            } else {
                struct hdr *got = atomic_exchange(&mailbox[rnd(&r) % MAILBOXES], NULL);
                if (got) verify(got, 0, "taken from a mailbox");
                slot[i] = got;
            }
        } else if (k < 40) {
            release(slot[i], "before free");
            slot[i] = NULL;
        } else if (k < 75) {
            slot[i] = resize(&r, slot[i]);
        } else {
            /* Hand the block to whichever thread next visits the mailbox; take what was there. */
            struct hdr *got = atomic_exchange(&mailbox[rnd(&r) % MAILBOXES], slot[i]);
            atomic_fetch_add_explicit(&passed, 1, memory_order_relaxed);
            slot[i] = NULL;
            if (got) {
                verify(got, 0, "taken from a mailbox");
                if (rnd(&r) % 2)
                    release(got, "before free by another thread");
                else
                    slot[i] = got;
            }
        }
    }
    for (unsigned i = 0; i < SLOTS; i++)
        if (slot[i]) release(slot[i], "at thread exit");
    return NULL;
}

static pthread_barrier_t crowd_barrier;
static pthread_key_t crowd_key;

/* Runs while a crowd thread exits, after the allocator may have given back its thread cache. */
static void crowd_exit(void *arg) {
    release(arg, "freed by a thread-exit destructor");
    struct rng r = {(uintptr_t)arg};
    for (int i = 0; i < 4; i++) release(allocate(&r, 0xE417ULL << 32 | (unsigned)i), "allocated at thread exit");
}

static struct hdr *crowd_left[CROWD][CROWD_BLOCKS / 2];

static void *crowd_member(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    struct rng r = {seed * 0xD6E8FEB86659FD93ULL + id * 0x9E3779B97F4A7C15ULL + 7};
    struct hdr *mine[CROWD_BLOCKS];
    for (unsigned i = 0; i < CROWD_BLOCKS; i++) mine[i] = allocate(&r, ((uint64_t)(id + 1000) << 40) + i);
    CHECK(pthread_setspecific(crowd_key, allocate(&r, ((uint64_t)(id + 1000) << 40) + 999)) == 0,
          "pthread_setspecific failed");
    int rc = pthread_barrier_wait(&crowd_barrier);
    CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD, "pthread_barrier_wait returned %d", rc);
    for (unsigned i = 0; i < CROWD_BLOCKS; i++) {
        if (i % 2)
            release(mine[i], "freed by its crowd thread");
        else
            crowd_left[id][i / 2] = mine[i];
    }
    return NULL;
}

/* CROWD threads alive at the same time, small stacks. */
static void crowd(void) {
    static pthread_t t[CROWD];
    pthread_attr_t attr;
    CHECK(pthread_attr_init(&attr) == 0, "pthread_attr_init failed");
    CHECK(pthread_attr_setstacksize(&attr, 256 << 10) == 0, "pthread_attr_setstacksize failed");
    CHECK(pthread_barrier_init(&crowd_barrier, NULL, CROWD) == 0, "pthread_barrier_init failed");
    CHECK(pthread_key_create(&crowd_key, crowd_exit) == 0, "pthread_key_create failed");
    for (unsigned i = 0; i < CROWD; i++) {
        int rc = pthread_create(&t[i], &attr, crowd_member, (void *)(uintptr_t)i);
        CHECK(rc == 0, "pthread_create of crowd thread %u failed (%d)", i, rc);
    }
    for (unsigned i = 0; i < CROWD; i++) CHECK(pthread_join(t[i], NULL) == 0, "pthread_join failed");
    pthread_barrier_destroy(&crowd_barrier);
    pthread_key_delete(crowd_key);
    pthread_attr_destroy(&attr);
    for (unsigned i = 0; i < CROWD; i++)
        for (unsigned j = 0; j < CROWD_BLOCKS / 2; j++) release(crowd_left[i][j], "left by an exited crowd thread");
}

int main(int argc, char **argv) {
    CHECK(argc >= 2 && argc <= 5, "usage: %s persistent|volatile [THREADS [OPS [SEED]]]", argv[0]);
    CHECK(crthreads_last_error != NULL, "crthreads is not loaded: malloc is not crthreads' malloc");
    unsigned nthreads = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 8;
    if (argc > 3) ops_per_thread = strtoul(argv[3], NULL, 0);
    if (argc > 4) seed = strtoull(argv[4], NULL, 0);
    CHECK(nthreads >= 1 && nthreads <= 64, "THREADS must be 1..64");
    pthread_t t[64];
    for (unsigned i = 0; i < nthreads; i++)
        CHECK(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) == 0, "pthread_create failed");
    for (unsigned i = 0; i < nthreads; i++) CHECK(pthread_join(t[i], NULL) == 0, "pthread_join failed");
    for (unsigned m = 0; m < MAILBOXES; m++) {
        struct hdr *h = atomic_exchange(&mailbox[m], NULL);
        if (h) release(h, "left in a mailbox");
    }
    crowd();
    unsigned long a = atomic_load(&allocs), f = atomic_load(&frees), p = atomic_load(&passed);
    CHECK(a == f, "%lu blocks allocated but %lu freed", a, f);
    unsigned long e = atomic_load(&errno_changed);
    CHECK(e == 0,
          "%lu of %lu calls to free changed errno (the first to %d, %s, %s); POSIX.1-2024 and glibc (since 2.33) "
          "leave errno alone in free",
          e, f, first_errno, strerror(first_errno), first_errno_when);
    CHECK(a > 0 && p > 0, "the run allocated %lu blocks and passed %lu between threads; expected both > 0", a, p);
    printf("stress: %u threads, %lu operations each, then %d threads at once; %lu blocks allocated, %lu passed "
           "between threads\n",
           nthreads, ops_per_thread, CROWD, a, p);
    return 0;
}
