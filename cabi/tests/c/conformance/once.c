/* once.c: pthread_once.
 *
 * Checks: eight threads released together by a barrier call pthread_once on one control: the
 * routine runs exactly once, every call returns 0 and returns only after the routine finished
 * (each caller sees its effect); a later call does not run it again; another control runs its
 * own routine once; a routine may call pthread_once on another control; a routine cancelled
 * part-way (it waits in sem_wait, a cancellation point) leaves the control as if pthread_once
 * had never been called: the caller's join gives PTHREAD_CANCELED and the next pthread_once on
 * that control runs the routine again.
 */
#include "conform.h"

enum { CALLERS = 8 };

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_barrier_t start;
static atomic_int calls, finished, saw_finished, nonzero;

static void init(void) {
    atomic_fetch_add(&calls, 1);
    /* Not a hand-over: it only keeps the routine running while the other callers arrive. */
    sleep_ms(20);
    atomic_store(&finished, 1);
}

static void *caller(void *arg) {
    (void)arg;
    pthread_barrier_wait(&start);
    if (pthread_once(&once, init) != 0) atomic_fetch_add(&nonzero, 1);
    if (atomic_load(&finished)) atomic_fetch_add(&saw_finished, 1);
    return NULL;
}

static pthread_once_t outer = PTHREAD_ONCE_INIT, inner = PTHREAD_ONCE_INIT, other = PTHREAD_ONCE_INIT;
static int inner_calls, outer_calls, other_calls;

static void inner_init(void) { inner_calls++; }

static void outer_init(void) {
    outer_calls++;
    MUST(pthread_once(&inner, inner_init) == 0);
}

static void other_init(void) { other_calls++; }

static pthread_once_t cancelled = PTHREAD_ONCE_INIT;
static sem_t entered, never;
static int cancelled_calls;

static void cancellable_init(void) {
    cancelled_calls++;
    MUST(sem_post(&entered) == 0);
    sem_wait(&never); /* cancelled here */
}

static void plain_init(void) { cancelled_calls++; }

static void *call_cancellable(void *arg) {
    (void)arg;
    pthread_once(&cancelled, cancellable_init);
    return (void *)1; /* not reached */
}

int main(void) {
    MUST(pthread_barrier_init(&start, NULL, CALLERS) == 0);
    pthread_t t[CALLERS];
    for (int i = 0; i < CALLERS; i++) t[i] = spawn(caller, NULL);
    for (int i = 0; i < CALLERS; i++) join(t[i]);
    show("once_contended_routine_runs", "%d", atomic_load(&calls));
    show("once_contended_nonzero_returns", "%d", atomic_load(&nonzero));
    show("once_callers_saw_routine_finished", "%d of %d", atomic_load(&saw_finished), CALLERS);
    rc("once_again", pthread_once(&once, init));
    show("once_routine_runs_after_second_call", "%d", atomic_load(&calls));

    rc("once_nested_outer", pthread_once(&outer, outer_init));
    rc("once_nested_inner_again", pthread_once(&inner, inner_init));
    show("once_nested_runs", "outer %d inner %d", outer_calls, inner_calls);
    rc("once_other_control", pthread_once(&other, other_init));
    rc("once_other_control_again", pthread_once(&other, other_init));
    show("once_other_control_runs", "%d", other_calls);

    MUST(sem_init(&entered, 0, 0) == 0 && sem_init(&never, 0, 0) == 0);
    pthread_t c = spawn(call_cancellable, NULL);
    sem_wait_must(&entered);
    rc("once_cancel_routine", pthread_cancel(c));
    void *v = join(c);
    yesno("once_cancelled_caller_joins_canceled", v == PTHREAD_CANCELED);
    rc("once_after_cancelled_routine", pthread_once(&cancelled, plain_init));
    show("once_cancelled_control_runs", "%d", cancelled_calls);
    return 0;
}
