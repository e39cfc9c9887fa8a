// The scheduler's side of the spawn server: starting it, and sending it requests with a descriptor attached
// (the cmsg macros do not import into Swift).

#define _GNU_SOURCE
#include "keiji_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int keiji_spawn_file_actions_closefrom(posix_spawn_file_actions_t *actions, int lowest) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
#else
    (void)actions; (void)lowest;
    return ENOSYS;
#endif
}

int keiji_spawn_file_actions_chdir(posix_spawn_file_actions_t *actions, const char *path) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
    return posix_spawn_file_actions_addchdir_np(actions, path);
#else
    (void)actions; (void)path;
    return ENOSYS;
#endif
}

int keiji_spawn_open_executable(const char *path) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

pid_t keiji_spawn_server_launch(const char *path, int executable_fd, int socket_fd, pid_t scheduler_pid) {
    // Above 4, so that the dup2s to 3 and 4 always make new descriptors (without close-on-exec).
    int moved = fcntl(socket_fd, F_DUPFD_CLOEXEC, 10);
    if (moved < 0) return -errno;
    int executable = fcntl(executable_fd, F_DUPFD_CLOEXEC, 10);
    if (executable < 0) {
        int error = errno;
        close(moved);
        return -error;
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attributes);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, moved, 3);
    posix_spawn_file_actions_adddup2(&actions, executable, 4);
    int code = keiji_spawn_file_actions_closefrom(&actions, 5);
    if (code == ENOSYS) code = 0;  // older C library: everything else of ours is close-on-exec anyway
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    char argument[24];
    snprintf(argument, sizeof argument, "%d", (int)scheduler_pid);
    char *argv[] = {(char *)path, argument, NULL};
    char *envp[] = {NULL};
    pid_t pid = 0;
    // The file held open, not whatever `path` names now: binaries replaced in place must not start a helper of
    // another version under a running scheduler.
    if (code == 0) code = posix_spawn(&pid, "/proc/self/fd/4", &actions, &attributes, argv, envp);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    close(moved);
    close(executable);
    return code == 0 ? pid : -code;
}

int keiji_spawn_send(int socket_fd, const void *bytes, size_t length, int fd) {
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = length};
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        message.msg_control = control.bytes;
        message.msg_controllen = sizeof control.bytes;
        struct cmsghdr *c = CMSG_FIRSTHDR(&message);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    for (;;) {
        if (sendmsg(socket_fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return 0;
        if (errno != EINTR) return -errno;
    }
}

int keiji_spawn_wakeup_create(void) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int keiji_spawn_child_stopped(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)pid, &info, WSTOPPED | WNOHANG) != 0) return 0;
    return info.si_pid == pid && info.si_code == CLD_STOPPED ? info.si_status : 0;
}
