/* term.c: work interrupted by SIGTERM, for the checkpoint-on-SIGTERM test (tests/c_term.rs).
 *
 * THREADS threads (main among them) each compute STEPS steps of preemptible arithmetic; each
 * step's value goes into the thread's slot of a global array, and the thread announces the step
 * on stderr (`t<thread> step <n>`) once it is done. At the end main prints `result <sum>` on
 * stdout. stderr also gets `start` when main starts (a resumed run does not call main again).
 *
 * With `--handler`, the program installs its own SIGTERM handler first; when it has run, main
 * prints `handled` on stdout and exits with status 3.
 *
 * usage: term [--handler] THREADS STEPS WORK
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 8

static uint64_t sums[MAX_THREADS];
static int steps, work;
static volatile sig_atomic_t terminated;

static void on_term(int sig) {
    (void)sig;
    terminated = 1;
}

static uint64_t mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void *run(void *arg) {
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < steps; i++) {
        uint64_t v = (uint64_t)t << 32 | (uint64_t)i;
        for (int k = 0; k < work; k++)
            v = mix(v);
        sums[t] += v;
        fprintf(stderr, "t%d step %d\n", t, i);
        if (terminated) {
            printf("handled\n");
            fflush(stdout);
            _Exit(3);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    int a = 1;
    if (argc > 1 && strcmp(argv[1], "--handler") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term;
        sigaction(SIGTERM, &sa, NULL);
        a = 2;
    }
    if (argc != a + 3) {
        fprintf(stderr, "usage: term [--handler] THREADS STEPS WORK\n");
        return 2;
    }
    fprintf(stderr, "start\n");
    int threads = atoi(argv[a]);
    steps = atoi(argv[a + 1]);
    work = atoi(argv[a + 2]);
    if (threads < 1 || threads > MAX_THREADS)
        return 2;
    pthread_t tid[MAX_THREADS];
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tid[t], NULL, run, (void *)(intptr_t)t) != 0)
            return 4;
    run((void *)0);
    uint64_t sum = 0;
    for (int t = 1; t < threads; t++)
        pthread_join(tid[t], NULL);
    for (int t = 0; t < threads; t++)
        sum += sums[t];
    printf("result %" PRIu64 "\n", sum);
    return 0;
}
