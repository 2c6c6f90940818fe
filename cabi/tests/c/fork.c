/* fork.c: the malloc family keeps working in the child of a multithreaded fork, as with glibc.
 *
 * Four threads allocate and free without pause (small blocks and page runs, so that the
 * allocator's locks are taken all the time) while the main thread forks FORKS times. Each child,
 * which has only the forking thread, allocates, reallocates, callocs and frees small and large
 * blocks, checks their contents, and exits with _exit(0). A child that is still running after 5
 * seconds is killed by its own alarm: it is stuck on an allocator lock that a thread which does not
 * exist in the child held at the time of the fork. Afterwards the parent's threads must still be
 * allocating normally.
 * usage: fork MODE [FORKS]  (default 40; MODE is persistent or volatile; the checks are the same)
 */
#include "check.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define THREADS 4
#define CHILD_LIMIT_SECONDS 5

static atomic_int stop;
static atomic_ulong rounds[THREADS];

static void *churn(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    unsigned long i = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        size_t small = 1 + (i * 37 + id) % 2000;
        size_t large = 40000 + (i % 7) * 9000;
        unsigned char *a = malloc(small);
        unsigned char *b = (i % 2) ? malloc(large) : memalign(4096, large);
        CHECK(a != NULL && b != NULL, "malloc failed in a churning thread (errno %d)", errno);
        memset(a, (int)(i & 0xff), small);
        b[0] = (unsigned char)i;
        b[large - 1] = (unsigned char)(i + 1);
        CHECK(a[small - 1] == (unsigned char)i && b[0] == (unsigned char)i && b[large - 1] == (unsigned char)(i + 1),
              "a block of a churning thread lost its bytes");
        free(b);
        free(a);
        atomic_store_explicit(&rounds[id], ++i, memory_order_relaxed);
    }
    return NULL;
}

/* What a child does: only the forking thread exists here. */
static void child_work(void) {
    alarm(CHILD_LIMIT_SECONDS);
    unsigned char *keep[64];
    for (int i = 0; i < 64; i++) {
        size_t n = (size_t)1 << (i % 18); /* 1 byte .. 128 KiB */
        keep[i] = (i % 3 == 0) ? calloc(1, n) : malloc(n);
        if (!keep[i]) _exit(2);
        memset(keep[i], i, n);
    }
    for (int i = 0; i < 64; i++) {
        size_t n = (size_t)1 << (i % 18);
        unsigned char *p = realloc(keep[i], 2 * n + 100);
        if (!p) _exit(3);
        for (size_t j = 0; j < n; j++)
            if (p[j] != (unsigned char)i) _exit(4);
        free(p);
    }
    _exit(0);
}

int main(int argc, char **argv) {
    CHECK(argc == 2 || argc == 3, "usage: %s persistent|volatile [FORKS]", argv[0]);
    CHECK(crthreads_last_error != NULL, "crthreads is not loaded: malloc is not crthreads' malloc");
    int forks = argc == 3 ? atoi(argv[2]) : 40;
    pthread_t t[THREADS];
    for (unsigned i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)i) == 0, "pthread_create failed");
    for (int k = 0; k < forks; k++) {
        /* Let the churning threads get going (and into the allocator's locks) before each fork. */
        unsigned long before = atomic_load(&rounds[k % THREADS]);
        while (atomic_load(&rounds[k % THREADS]) < before + 50) sched_yield();
        fflush(stdout);
        pid_t c = fork();
        CHECK(c >= 0, "fork failed (errno %d)", errno);
        if (c == 0) child_work();
        int st = 0;
        CHECK(waitpid(c, &st, 0) == c, "waitpid failed (errno %d)", errno);
        CHECK(!(WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM),
              "child %d of %d hung in the allocator after fork (killed by its %d-second alarm): a lock held by "
              "another thread at the time of the fork stays locked in the child",
              k + 1, forks, CHILD_LIMIT_SECONDS);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "child %d of %d failed: %s %d (2/3: allocation failed, 4: realloc lost contents)", k + 1, forks,
              WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
    /* The parent's threads are still allocating. */
    for (unsigned i = 0; i < THREADS; i++) {
        unsigned long before = atomic_load(&rounds[i]);
        while (atomic_load(&rounds[i]) < before + 100) sched_yield();
    }
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0, "pthread_join failed");
    return 0;
}
