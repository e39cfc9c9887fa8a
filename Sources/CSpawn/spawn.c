// Process spawning for task runs. vfork() shares the parent's memory until exec, so the child only makes
// async-signal-safe system calls and reports a failed exec through a CLOEXEC pipe (the CPython
// _posixsubprocess pattern). Signals are blocked in the parent around vfork so no handler runs in the child.

#define _GNU_SOURCE
#include "keiji_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

static void close_descriptors_from(int lowest) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) == 0) return;
#endif
    for (int fd = lowest; fd < 65536; fd++) close(fd);
}

pid_t keiji_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, int output_fd,
                  int die_with_parent) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return -errno;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) { int e = errno; close(report[0]); close(report[1]); return -e; }

    pid_t parent = getpid();
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);

    pid_t pid = vfork();
    if (pid == 0) {
        int code = 0;
        int reporter = report[1];
        // Default dispositions and an empty mask: the task must see SIGTERM (Foundation.Process forgets this).
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; s++) {
            if (s == SIGKILL || s == SIGSTOP) continue;
            sigaction(s, &dfl, NULL);
        }
        if (setpgid(0, 0) != 0) { code = errno; goto fail; }
        if (die_with_parent) {
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) { code = errno; goto fail; }
            if (getppid() != parent) { code = ESRCH; goto fail; }  // the parent died before prctl
        }
        if (cwd && chdir(cwd) != 0) { code = errno; goto fail; }
        if (dup2(devnull, 0) < 0 || dup2(output_fd, 1) < 0 || dup2(output_fd, 2) < 0) { code = errno; goto fail; }
        if (dup2(report[1], 3) < 0) { code = errno; goto fail; }
        fcntl(3, F_SETFD, FD_CLOEXEC);
        reporter = 3;
        close_descriptors_from(4);
        sigset_t none;
        sigemptyset(&none);
        syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(unsigned long));
        execve(path, argv, envp);
        code = errno;
    fail:
        (void)!write(reporter, &code, sizeof code);
        _exit(127);
    }
    int spawn_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    close(report[1]);
    close(devnull);
    if (pid < 0) { close(report[0]); return -spawn_errno; }

    int child_errno = 0;
    ssize_t n;
    do { n = read(report[0], &child_errno, sizeof child_errno); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == sizeof child_errno) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return -child_errno;
    }
    return pid;
}

#include <stdint.h>
#include <sys/epoll.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int keiji_child_watch_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int keiji_child_watch_add(int watch, pid_t pid) {
    long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) return -errno;
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = EPOLLIN;
    event.data.u64 = (uint64_t)(uint32_t)pid | ((uint64_t)(uint32_t)fd << 32);
    if (epoll_ctl(watch, EPOLL_CTL_ADD, (int)fd, &event) != 0) { int e = errno; close((int)fd); return -e; }
    return 0;
}

int keiji_child_watch_wait(int watch, pid_t *pids, int capacity) {
    struct epoll_event events[64];
    if (capacity > 64) capacity = 64;
    int count;
    do { count = epoll_wait(watch, events, capacity, -1); } while (count < 0 && errno == EINTR);
    if (count < 0) return -errno;
    for (int i = 0; i < count; i++) {
        int fd = (int)(uint32_t)(events[i].data.u64 >> 32);
        epoll_ctl(watch, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
        pids[i] = (pid_t)(uint32_t)events[i].data.u64;
    }
    return count;
}

int keiji_spawn_file_actions_closefrom(posix_spawn_file_actions_t *actions, int lowest) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
#else
    (void)actions; (void)lowest;
    return ENOSYS;
#endif
}
