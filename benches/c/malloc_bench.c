/* Small-object malloc/free throughput of whatever malloc the process has: glibc's, or
 * crthreads' when run with LD_PRELOAD=libcrthreads.so. Same workload as the Rust benchmark:
 * a working set of `slots` pointers; each operation frees a random slot and allocates a block
 * of a random size in 16..=max bytes, writing its first byte. Prints million operations per
 * second for `threads` threads running at once.
 *
 * usage: malloc_bench THREADS OPS SLOTS MAX */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long ops, slots, max;

static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void *work(void *arg) {
    uint64_t rng = 42 + (uintptr_t)arg;
    char **v = calloc(slots, sizeof *v);
    for (long i = 0; i < ops; i++) {
        uint64_t r = next(&rng);
        long k = (long)(r % (uint64_t)slots);
        size_t size = 16 + (size_t)((r >> 32) % (uint64_t)(max - 15));
        free(v[k]);
        v[k] = malloc(size);
        if (!v[k]) abort();
        v[k][0] = (char)r;
    }
    for (long k = 0; k < slots; k++) free(v[k]);
    free(v);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    long threads = atol(argv[1]);
    ops = atol(argv[2]);
    slots = atol(argv[3]);
    max = atol(argv[4]);
    pthread_t t[64];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, work, (void *)i);
    for (long i = 0; i < threads; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    printf("%.2f\n", (double)(threads * ops) / s / 1e6);
    return 0;
}
