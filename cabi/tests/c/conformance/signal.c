/* signal.c: signals and threads.
 *
 * Checks: pthread_kill with signal 0 probes a live thread and the caller (0); a signal number
 * out of range (EINVAL); a handled SIGUSR1 sent with pthread_kill runs its handler in the
 * target thread, and, while the target blocks it, stays pending on that thread (sigpending)
 * until the target unblocks it in sigsuspend; raise in a thread runs the handler in that
 * thread; a new thread inherits its creator's signal mask and changing its own mask leaves
 * the creator's alone; pthread_sigmask with a bad `how` (EINVAL); a signal sent to the caller
 * while blocked stays pending and is delivered by the pthread_sigmask that unblocks it, before
 * that returns; sigwait takes a blocked pending signal (returns 0 and the signal number).
 */
#include "conform.h"

static volatile sig_atomic_t handled;
static pthread_t handled_in;

static void on_signal(int sig) {
    (void)sig;
    handled_in = pthread_self();
    handled++;
}

static sem_t ready, go;
static int pending_in_target = -1, handled_before_unblock = -1;

static void *target(void *arg) {
    (void)arg;
    sigset_t block, wait_mask, pending;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    MUST(pthread_sigmask(SIG_BLOCK, &block, &wait_mask) == 0);
    sigdelset(&wait_mask, SIGUSR1);
    MUST(sem_post(&ready) == 0);
    sem_wait_must(&go); /* main has sent the signal */
    MUST(sigpending(&pending) == 0);
    pending_in_target = sigismember(&pending, SIGUSR1);
    handled_before_unblock = handled;
    while (!handled) sigsuspend(&wait_mask);
    return NULL;
}

static void *raise_here(void *arg) {
    (void)arg;
    MUST(raise(SIGUSR1) == 0);
    return NULL;
}

static int inherited = -1;

static void *look_at_mask(void *arg) {
    (void)arg;
    sigset_t cur, usr2;
    MUST(pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0);
    inherited = sigismember(&cur, SIGUSR2);
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    MUST(pthread_sigmask(SIG_UNBLOCK, &usr2, NULL) == 0);
    return NULL;
}

static void *idle(void *arg) {
    sem_wait_must(arg);
    return NULL;
}

int main(void) {
    handle(SIGUSR1, on_signal, 0);
    sem_t hold;
    MUST(sem_init(&hold, 0, 0) == 0 && sem_init(&ready, 0, 0) == 0 && sem_init(&go, 0, 0) == 0);

    pthread_t t = spawn(idle, &hold);
    rc("kill_0_live_thread", pthread_kill(t, 0));
    rc("kill_0_self", pthread_kill(pthread_self(), 0));
    rc("kill_bad_signal_number", pthread_kill(t, 9999));
    rc("kill_negative_signal_number", pthread_kill(t, -1));
    MUST(sem_post(&hold) == 0);
    join(t);

    t = spawn(target, NULL);
    sem_wait_must(&ready);
    rc("kill_handled_signal", pthread_kill(t, SIGUSR1));
    MUST(sem_post(&go) == 0);
    join(t);
    yesno("kill_pending_on_blocking_target", pending_in_target == 1);
    show("kill_handled_before_target_unblocked", "%d", handled_before_unblock);
    show("kill_handler_runs", "%d", (int)handled);
    yesno("kill_handler_ran_in_target", pthread_equal(handled_in, t) != 0);

    handled = 0;
    t = spawn(raise_here, NULL);
    join(t);
    show("raise_in_thread_handler_runs", "%d", (int)handled);
    yesno("raise_in_thread_handler_ran_in_that_thread", pthread_equal(handled_in, t) != 0);

    sigset_t usr2, cur;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    MUST(pthread_sigmask(SIG_BLOCK, &usr2, NULL) == 0);
    join(spawn(look_at_mask, NULL));
    yesno("sigmask_inherited_by_new_thread", inherited == 1);
    MUST(pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0);
    yesno("sigmask_creator_unchanged_by_thread", sigismember(&cur, SIGUSR2) == 1);
    rc("sigmask_bad_how", pthread_sigmask(42, &usr2, NULL));

    handled = 0;
    sigset_t usr1, pending;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    MUST(pthread_sigmask(SIG_BLOCK, &usr1, NULL) == 0);
    rc("kill_self_blocked_signal", pthread_kill(pthread_self(), SIGUSR1));
    show("blocked_signal_handler_runs_before_unblock", "%d", (int)handled);
    MUST(sigpending(&pending) == 0);
    yesno("blocked_signal_pending", sigismember(&pending, SIGUSR1) == 1);
    rc("sigmask_unblock", pthread_sigmask(SIG_UNBLOCK, &usr1, NULL));
    show("blocked_signal_handler_runs_after_unblock", "%d", (int)handled);

    rc("kill_self_sigusr2_for_sigwait", pthread_kill(pthread_self(), SIGUSR2));
    int sig = 0;
    rc("sigwait", sigwait(&usr2, &sig));
    show("sigwait_signal", "%s", sig == SIGUSR2 ? "SIGUSR2" : "other");
    MUST(sigpending(&pending) == 0);
    yesno("sigwait_consumes_signal", sigismember(&pending, SIGUSR2) == 0);
    return 0;
}
