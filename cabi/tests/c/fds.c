/* fds.c: descriptors no restore can give back, for the refusal test (tests/c_fds.rs).
 *
 * main computes A steps, then opens a pipe, a socket pair and an eventfd and says
 * `held <pipe read end> <pipe write end> <socket> <socket> <eventfd>` on stderr, computes B
 * steps, closes them all and says `closed`, computes C steps and prints `result <value>`.
 * stderr: `start` when main starts (a resumed run does not call main again).
 *
 * usage: fds A B C
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

static uint64_t mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t compute(uint64_t v, long steps) {
    for (long i = 0; i < steps; i++)
        for (int k = 0; k < 100000; k++)
            v = mix(v);
    return v;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: fds A B C\n");
        return 2;
    }
    fprintf(stderr, "start\n");
    uint64_t v = compute(1, atol(argv[1]));
    int p[2], s[2];
    if (pipe(p) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0)
        return 4;
    int e = eventfd(0, 0);
    if (e < 0)
        return 4;
    fprintf(stderr, "held %d %d %d %d %d\n", p[0], p[1], s[0], s[1], e);
    v = compute(v, atol(argv[2]));
    close(p[0]);
    close(p[1]);
    close(s[0]);
    close(s[1]);
    close(e);
    fprintf(stderr, "closed\n");
    v = compute(v, atol(argv[3]));
    printf("result %" PRIu64 "\n", v);
    return 0;
}
