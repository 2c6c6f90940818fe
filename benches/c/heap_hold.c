/* heap_hold: the program the C benchmarks (benches/src/bin/cexamples.rs) start and restart.
 *
 *   heap_hold MIB
 * Allocates MIB MiB and fills it with non-zero bytes, then loops forever: one byte of the heap
 * written, a mutex locked and released
 * (the release is a safepoint), a 1 ms nanosleep. Each time it runs in a new process (a fresh start, or
 * a restart from a checkpoint, which resumes the loop) it writes `alive` on stdout once, with
 * write(2) (stdio's buffer is not restored), so a parent can time start-up and restart.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static pid_t seen;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const struct timespec tick = {0, 1000000};

int main(int argc, char **argv) {
    size_t len = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) << 20 : 0;
    unsigned char *heap = len ? malloc(len) : NULL;
    if (len && !heap)
        return 1;
    for (size_t i = 0; i < len; i++)
        heap[i] = (unsigned char)(i * 7 + 1);
    for (size_t i = 0;; i++) {
        if (getpid() != seen) {
            seen = getpid();
            if (write(1, "alive\n", 6) != 6)
                return 1;
        }
        if (len)
            heap[(i * 4096) % len] += 1;
        pthread_mutex_lock(&lock); /* its release is a safepoint */
        pthread_mutex_unlock(&lock);
        nanosleep(&tick, NULL);
    }
}
