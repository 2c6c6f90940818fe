/* app_mergesort.c: a parallel merge sort, written the way an application would write one (no
 * test scaffolding). 300000 pseudo-random keys (a fixed xorshift seed) are sorted by a merge
 * sort that hands the left half of every split to a new thread down to depth 3 (seven threads
 * besides main, eight sorting at once at the leaves), sorts the right half itself, joins and
 * merges. The result is checked against qsort on a copy; the program prints a digest of the
 * sorted keys (FNV-1a), the smallest, median and largest keys, the number of distinct keys and
 * a few order statistics, none of which depends on scheduling.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 300000
#define PARALLEL_DEPTH 3

struct job {
    uint32_t *a, *tmp;
    size_t n;
    int depth;
};

static void merge(uint32_t *a, uint32_t *tmp, size_t mid, size_t n) {
    size_t i = 0, j = mid, k = 0;
    while (i < mid && j < n) tmp[k++] = a[j] < a[i] ? a[j++] : a[i++];
    while (i < mid) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

static void *sort(void *arg);

static void sort_range(uint32_t *a, uint32_t *tmp, size_t n, int depth) {
    if (n < 2) return;
    if (n < 32) { /* insertion sort */
        for (size_t i = 1; i < n; i++) {
            uint32_t v = a[i];
            size_t j = i;
            while (j > 0 && a[j - 1] > v) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = v;
        }
        return;
    }
    size_t mid = n / 2;
    if (depth < PARALLEL_DEPTH) {
        struct job left = {a, tmp, mid, depth + 1};
        pthread_t t;
        int e = pthread_create(&t, NULL, sort, &left);
        if (e) {
            fprintf(stderr, "pthread_create: %s\n", strerror(e));
            exit(1);
        }
        sort_range(a + mid, tmp + mid, n - mid, depth + 1);
        pthread_join(t, NULL);
    } else {
        sort_range(a, tmp, mid, depth + 1);
        sort_range(a + mid, tmp + mid, n - mid, depth + 1);
    }
    merge(a, tmp, mid, n);
}

static void *sort(void *arg) {
    struct job *j = arg;
    sort_range(j->a, j->tmp, j->n, j->depth);
    return NULL;
}

static int cmp(const void *x, const void *y) {
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

int main(void) {
    uint32_t *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *tmp = malloc(N * sizeof *tmp);
    if (!a || !b || !tmp) {
        perror("malloc");
        return 1;
    }
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        a[i] = (uint32_t)(x >> 32) % 1000000u; /* repeats, so that stability-free merging is exercised */
        b[i] = a[i];
    }
    sort_range(a, tmp, N, 0);
    qsort(b, N, sizeof *b, cmp);

    int sorted = 1;
    for (size_t i = 1; i < N; i++) sorted &= a[i - 1] <= a[i];
    uint64_t h = 1469598103934665603ULL;
    size_t distinct = N > 0;
    for (size_t i = 0; i < N; i++) {
        h = (h ^ a[i]) * 1099511628211ULL;
        if (i > 0 && a[i] != a[i - 1]) distinct++;
    }
    printf("keys: %d\n", N);
    printf("sorted: %s\n", sorted ? "yes" : "no");
    printf("same as qsort: %s\n", memcmp(a, b, N * sizeof *a) == 0 ? "yes" : "no");
    printf("fnv1a digest: %016llx\n", (unsigned long long)h);
    printf("min %u, median %u, max %u\n", a[0], a[N / 2], a[N - 1]);
    printf("distinct keys: %zu\n", distinct);
    for (int p = 10; p < 100; p += 20) printf("percentile %d: %u\n", p, a[(size_t)N * p / 100]);
    free(a);
    free(b);
    free(tmp);
    return 0;
}
