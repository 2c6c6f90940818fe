/* checkpoint_restore.h: the C interface of crthreads.
 *
 * Link with -lcrthreads (or run under LD_PRELOAD=libcrthreads.so). The library initialises
 * itself before main from the CRTHREADS_* environment variables; every malloc'd block then
 * lives in a persistent heap at a fixed address, and after a crash running the program again
 * restores the heap as of the last checkpoint. Find your data again through
 * crthreads_root_get().
 *
 * Conventions: control calls return -1 and set errno on failure (crthreads_last_error() has
 * the message, which is also written to stderr); allocation calls return NULL and set errno.
 */
#ifndef CHECKPOINT_RESTORE_H
#define CHECKPOINT_RESTORE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum cr_durability {
    CR_DURABILITY_DEFAULT = 0, /* CRTHREADS_DURABILITY, or process */
    CR_DURABILITY_PROCESS = 1, /* a checkpoint survives the death of the process */
    CR_DURABILITY_SYNC = 2,    /* a checkpoint survives power loss (fdatasync) */
};

enum cr_keep {
    CR_KEEP_DEFAULT = 0, /* CRTHREADS_KEEP, or remove */
    CR_KEEP = 1,         /* keep the checkpoint after exit(0) */
    CR_REMOVE = 2,       /* remove the checkpoint at exit(0) */
};

/* Settings; a zero field means "the environment's value, or the default". */
struct crattr {
    const char *dir;       /* checkpoint directory (CRTHREADS_DIR) */
    unsigned long base;    /* fixed address of the persistent region (CRTHREADS_BASE) */
    size_t capacity;       /* size of the region in bytes (CRTHREADS_CAPACITY) */
    int durability;        /* enum cr_durability */
    int keep;              /* enum cr_keep */
    const char *stats;     /* file receiving one JSON line per checkpoint (CRTHREADS_STATS) */
};

/* Initialises crthreads, or confirms the initialisation made when the library was loaded
 * (then dir, base and capacity cannot change: errno EBUSY). attr may be NULL.
 * Returns 1 if the heap was restored from a checkpoint, 0 on a fresh start, -1 on error. */
int crinit(struct crattr *attr);

/* Takes a checkpoint of the persistent heap. 0 on success; -1 on error, in which case the
 * previous checkpoint stays valid and the program may continue. */
int checkpoint(void);

/* 1 if this run's heap was restored from a checkpoint, 0 if it started fresh, -1 if crthreads
 * is not initialised. */
int restore(void);

/* Persistent allocation (the same heap malloc uses once crthreads is initialised). */
void *crmalloc(size_t size);
void crfree(void *ptr);
void *crrealloc(void *ptr, size_t size);

/* The persistent root: size bytes, zeroed on a fresh start, the same block after a restore. */
void *crthreads_root_get(size_t size);

/* Deletes the checkpoint now (done automatically at exit(0) unless kept). */
int crthreads_retire(void);

/* The message of this thread's last failed crthreads call. */
const char *crthreads_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* CHECKPOINT_RESTORE_H */
