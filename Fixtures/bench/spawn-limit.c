/* The machine's limit for the peer benchmark's workload: one thread paces posix_spawn (vfork in glibc) of
 * the probe for N tasks every second, task i at T0 + phase(i) + k for k = 0..D-1, sleeping to each deadline
 * with clock_nanosleep(TIMER_ABSTIME); a second thread reaps. No bookkeeping, no durability: what
 * starting these processes on time costs on this machine and nothing else.
 *
 *   spawn-limit <probe> <stamp directory> <N> <D> <T0: CLOCK_REALTIME seconds, may have a fraction> [<phases>]
 *
 * phase(i) is i/N s, or the i-th line of the <phases> file (milliseconds, 0-999): scripts/bench-peer passes
 * the phases keiji's tasks got from their creation times, so that every row starts the same moments.
 *
 * Task i's probe appends to <stamp directory>/<i>. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static atomic_long spawned, reaped;
static atomic_int done;

static void *reap(void *unused) {
    (void)unused;
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid > 0) { atomic_fetch_add(&reaped, 1); continue; }
        if (errno == EINTR) continue;
        /* ECHILD: nothing to reap right now. */
        if (atomic_load(&done) && atomic_load(&reaped) == atomic_load(&spawned)) return NULL;
        usleep(1000);
    }
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: spawn-limit <probe> <stamp directory> <tasks> <seconds> <start time> [<phases file>]\n");
        return 2;
    }
    const char *probe = argv[1];
    long tasks = strtol(argv[3], NULL, 10), seconds = strtol(argv[4], NULL, 10);
    double start = strtod(argv[5], NULL);
    if (tasks < 1 || tasks > 1000000 || seconds < 1 || seconds > 86400 || start <= 0) {
        fprintf(stderr, "spawn-limit: tasks 1-1000000, seconds 1-86400, start > 0\n");
        return 2;
    }
    char **paths = calloc((size_t)tasks, sizeof *paths);
    for (long i = 0; i < tasks; i++) {
        if (asprintf(&paths[i], "%s/%ld", argv[2], i) < 0) return 1;
    }
    /* Each task's offset in the second, and the tasks in the order of their offsets. */
    long long *phase = calloc((size_t)tasks, sizeof *phase);
    long *order = calloc((size_t)tasks, sizeof *order);
    FILE *phases = argc == 7 ? fopen(argv[6], "r") : NULL;
    if (argc == 7 && !phases) { perror(argv[6]); return 2; }
    for (long i = 0; i < tasks; i++) {
        long ms;
        if (phases && (fscanf(phases, "%ld", &ms) != 1 || ms < 0 || ms > 999)) {
            fprintf(stderr, "spawn-limit: %s: line %ld is not a phase of 0-999 ms\n", argv[6], i + 1);
            return 2;
        }
        phase[i] = phases ? ms * 1000000LL : i * 1000000000LL / tasks;
        long at = i;  /* insertion sort: stable, so tasks with one phase start in task order */
        while (at > 0 && phase[order[at - 1]] > phase[i]) { order[at] = order[at - 1]; at--; }
        order[at] = i;
    }
    if (phases) fclose(phases);
    pthread_t reaper;
    if (pthread_create(&reaper, NULL, reap, NULL) != 0) return 1;

    long long start_ns = (long long)(start * 1e9);
    long failures = 0;
    for (long k = 0; k < seconds; k++) {
        for (long n = 0; n < tasks; n++) {
            long i = order[n];
            long long due = start_ns + k * 1000000000LL + phase[i];
            struct timespec deadline = {.tv_sec = due / 1000000000LL, .tv_nsec = due % 1000000000LL};
            while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &deadline, NULL) == EINTR) {}
            char *child_argv[] = {(char *)probe, paths[i], NULL};
            pid_t pid;
            if (posix_spawn(&pid, probe, NULL, NULL, child_argv, environ) == 0) {
                atomic_fetch_add(&spawned, 1);
            } else {
                failures++;
            }
        }
    }
    atomic_store(&done, 1);
    pthread_join(reaper, NULL);
    if (failures) fprintf(stderr, "spawn-limit: %ld spawns failed\n", failures);
    return failures ? 1 : 0;
}
