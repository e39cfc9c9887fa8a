// keiji-run-guard: the direct child of the scheduler for every task run.
//
//   keiji-run-guard <grace-ms> <program> [arguments...]
//
// Linux's parent-death signal reaches only the scheduler's direct child, so a task's own children (a shell's
// `sleep`, a worker pool) would outlive a crashed scheduler. This guard is that direct child: it runs the
// task in its process group (the scheduler made the group), and when it gets SIGTERM, SIGINT or SIGHUP
// (the scheduler died, or asked it to stop), it sends SIGTERM to the whole group and SIGKILL after the grace
// period. Otherwise it waits for the task and leaves with exactly the task's status: the same exit code,
// or death by the same signal.

#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t terminating = 0;

static void on_terminate(int sig) { (void)sig; terminating = 1; }

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: keiji-run-guard <grace-ms> <program> [arguments...]\n");
        return 64;
    }
    long grace_ms = strtol(argv[1], NULL, 10);
    pid_t group = getpgrp();

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_terminate;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGHUP, &action, NULL);

    // SIGTERM (not the spawner's SIGKILL) when the scheduler dies, so the group gets cleaned up.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    const char *expected = getenv("KEIJI_SCHEDULER_PID");
    if (expected && getppid() != (pid_t)strtol(expected, NULL, 10)) terminating = 1;  // died before prctl

    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "keiji-run-guard: fork: %s\n", strerror(errno));
        return 126;
    }
    if (child == 0) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGHUP, &dfl, NULL);
        prctl(PR_SET_PDEATHSIG, 0);
        execv(argv[2], argv + 2);
        fprintf(stderr, "keiji-run-guard: cannot run %s: %s\n", argv[2], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }

    int status = 0;
    long long kill_at = -1;
    int forwarded = 0;
    for (;;) {
        if (terminating && !forwarded) {
            forwarded = 1;
            signal(SIGTERM, SIG_IGN);  // the group signal below must not end the guard itself
            kill(-group, SIGTERM);
            kill_at = now_ms() + grace_ms;
        }
        pid_t done = waitpid(child, &status, forwarded ? WNOHANG : 0);
        if (done == child) break;
        if (done < 0 && errno != EINTR) { status = 0; break; }
        if (forwarded) {
            if (now_ms() >= kill_at) kill(-group, SIGKILL);  // ends the guard too
            usleep(10000);
        }
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        kill(getpid(), sig);
        return 128 + sig;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
