/*
 * What the C example programs share: argument parsing with clear errors, the output contract,
 * the output file, deterministic pseudo-random numbers and the checksum.
 *
 * The programs use plain pthreads and the C library only. Built with -pthread they run on
 * glibc's threads; linked with -lcrthreads (or started with LD_PRELOAD=libcrthreads.so) the
 * same source runs on crthreads.
 *
 * Output contract, common to every example:
 *   stdout  `iter <i>` for i = 0, 1, 2, ... as each unit of progress completes, then the last
 *           line `result <checksum>` (16 lowercase hex digits). Nothing else.
 *   stderr  progress notes for people (parameters, timings); no contract.
 *   --out   one record per unit, `<i> <fields...>`, in the order of i, then the same
 *           `result <checksum>` line. The file is opened once (fopen "w") and each record is
 *           written and flushed at the point where the program's state says the unit is done,
 *           inside the critical section that makes it done. Its bytes depend only on the
 *           arguments other than --threads, never on scheduling.
 *   exit    0 on success; 1 on a runtime failure (an output error, a failed self-check, a
 *           pthread call that failed) with a message on stderr; 2 on a bad command line, with a
 *           message naming the argument; `--help` prints the usage on stdout and exits 0.
 *
 * Every line on stdout and in the output file is flushed as soon as it is written, so that
 * nothing sits in a stdio buffer between two units.
 */
#ifndef CRTHREADS_EXAMPLE_H
#define CRTHREADS_EXAMPLE_H

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The program's name in messages; each example sets it before parsing its arguments. */
static const char *ex_prog = "example";

/* A runtime failure: message on stderr, exit status 1. */
__attribute__((format(printf, 1, 2), noreturn)) static void ex_die(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", ex_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* A bad command line: message on stderr, a hint, exit status 2. */
__attribute__((format(printf, 1, 2), noreturn)) static void ex_usage_error(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", ex_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nrun `%s --help` for usage\n", ex_prog);
    exit(2);
}

/* Exits with a message naming `what` if a pthread call returned an error number. */
static inline void ex_pt(int rc, const char *what) {
    if (rc != 0) {
        ex_die("%s failed: %s", what, strerror(rc));
    }
}

static inline void *ex_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        ex_die("out of memory (%zu x %zu bytes)", n, size);
    }
    return p;
}

/* ---- command line ---------------------------------------------------------------------- */

/* The parser's state: `--flag VALUE` and `--flag=VALUE` are both accepted. */
struct ex_args {
    int argc;
    char **argv;
    int i;             /* index of the current argument */
    const char *arg;   /* the current argument */
    const char *flag;  /* the flag matched by ex_flag */
    const char *value; /* its value */
    const char *usage;
};

static inline struct ex_args ex_args_init(const char *prog, const char *usage, int argc, char **argv) {
    ex_prog = prog;
    struct ex_args a = {argc, argv, 0, NULL, NULL, NULL, usage};
    return a;
}

/* Moves to the next argument; 0 at the end. `-h`/`--help` print the usage and exit 0. */
static inline int ex_next(struct ex_args *a) {
    a->i++;
    if (a->i >= a->argc) {
        return 0;
    }
    a->arg = a->argv[a->i];
    if (strcmp(a->arg, "--help") == 0 || strcmp(a->arg, "-h") == 0) {
        fputs(a->usage, stdout);
        exit(fflush(stdout) == 0 ? 0 : 1);
    }
    return 1;
}

/* Whether the current argument is `name` (taking its value from the next argument) or
 * `name=VALUE`; a missing or empty value is a usage error. */
static inline int ex_flag(struct ex_args *a, const char *name) {
    size_t n = strlen(name);
    if (strncmp(a->arg, name, n) != 0) {
        return 0;
    }
    if (a->arg[n] == '=') {
        a->value = a->arg + n + 1;
    } else if (a->arg[n] == '\0') {
        if (a->i + 1 >= a->argc) {
            ex_usage_error("`%s` needs a value", name);
        }
        a->value = a->argv[++a->i];
    } else {
        return 0;
    }
    a->flag = name;
    if (a->value[0] == '\0') {
        ex_usage_error("`%s` needs a value, got an empty one", name);
    }
    return 1;
}

/* Fails on the current argument, which no ex_flag matched. */
__attribute__((noreturn)) static inline void ex_unknown(const struct ex_args *a) {
    if (a->arg[0] == '-') {
        ex_usage_error("unknown option `%s`", a->arg);
    }
    ex_usage_error("unexpected argument `%s` (every option is `--name VALUE`)", a->arg);
}

/* The current flag's value as a decimal integer in [min, max]: digits only, no sign, no
 * spaces, no overflow. */
static inline uint64_t ex_u64(const struct ex_args *a, uint64_t min, uint64_t max) {
    const char *s = a->value;
    uint64_t v = 0;
    int ok = *s != '\0';
    for (; ok && *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) {
            ok = 0;
            break;
        }
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (!ok || v < min || v > max) {
        ex_usage_error("`%s` expects an integer from %" PRIu64 " to %" PRIu64 ", got `%s`", a->flag, min, max,
                       a->value);
    }
    return v;
}

/* ---- output ---------------------------------------------------------------------------- */

/* Opens the output file (truncating it), or returns NULL when no file was asked for. */
static inline FILE *ex_open_out(const char *path) {
    if (path == NULL) {
        return NULL;
    }
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        ex_die("cannot open the output file `%s`: %s", path, strerror(errno));
    }
    return f;
}

/* Appends one line to the output file (if any) and flushes it. */
__attribute__((format(printf, 2, 3))) static void ex_record(FILE *f, const char *fmt, ...) {
    if (f == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int rc = vfprintf(f, fmt, ap);
    va_end(ap);
    if (rc < 0 || fputc('\n', f) == EOF || fflush(f) != 0) {
        ex_die("writing the output file: %s", strerror(errno));
    }
}

/* Prints `iter <i>` on stdout and flushes it. */
static inline void ex_iter(uint64_t i) {
    if (printf("iter %" PRIu64 "\n", i) < 0 || fflush(stdout) != 0) {
        ex_die("writing stdout: %s", strerror(errno));
    }
}

/* Prints the last line, `result <checksum>`, on stdout and in the output file, and closes the
 * file. */
static inline void ex_result(FILE *f, uint64_t checksum) {
    ex_record(f, "result %016" PRIx64, checksum);
    if (f != NULL && fclose(f) != 0) {
        ex_die("closing the output file: %s", strerror(errno));
    }
    if (printf("result %016" PRIx64 "\n", checksum) < 0 || fflush(stdout) != 0) {
        ex_die("writing stdout: %s", strerror(errno));
    }
}

/* Seconds since an arbitrary moment, for the notes on stderr. */
static inline double ex_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- numbers --------------------------------------------------------------------------- */

/* The SplitMix64 finaliser (Steele, Lea & Flood, 2014): a well-mixed bijection of 64 bits. */
static inline uint64_t ex_mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A value that depends only on (seed, a, b): data any thread can generate in any order. */
static inline uint64_t ex_hash3(uint64_t seed, uint64_t a, uint64_t b) {
    return ex_mix(ex_mix(ex_mix(seed) ^ a) ^ b);
}

/* Uniform in [0, 1), 53 random bits of h. */
static inline double ex_unit(uint64_t h) {
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* The running checksum: folds one 64-bit word into h. Order matters. */
static inline uint64_t ex_fold(uint64_t h, uint64_t v) {
    return ex_mix(h ^ ex_mix(v));
}

/* The bit pattern of a double, for checksums that must be bit-exact. */
static inline uint64_t ex_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

#endif
