#ifndef KEIJI_SPAWN_H
#define KEIJI_SPAWN_H

#include <spawn.h>
#include <stddef.h>
#include <sys/types.h>

#include "keiji_spawn_protocol.h"

/// Adds "close every descriptor from `lowest` up" to spawn file actions (glibc 2.34+), so a daemon started by
/// the CLI keeps none of the CLI's descriptors. Returns 0 or an errno (ENOSYS on older C libraries).
int keiji_spawn_file_actions_closefrom(posix_spawn_file_actions_t *actions, int lowest);

/// Adds "change to `path`" to spawn file actions (glibc 2.29+), so a daemon does not run from (and hold) the
/// folder it was started in. Returns 0 or an errno (ENOSYS on older C libraries).
int keiji_spawn_file_actions_chdir(posix_spawn_file_actions_t *actions, const char *path);

/// Opens `path` to exec it later by descriptor (O_PATH: it needs no read permission). Returns it or -errno.
int keiji_spawn_open_executable(const char *path);

/// Starts keiji-spawn-server from `executable_fd` (the helper opened at the scheduler's start, `path` being only
/// its name in argv[0]) with `socket_fd` as its descriptor 3, the executable as 4 (to exec it by
/// /proc/self/fd/4) and nothing else of ours open, in a process group of its own (a Ctrl-C meant for the
/// scheduler must not reach it), with `scheduler_pid` as its argument. Call it from a thread that lives as long
/// as the process: the server's parent-death signal is tied to the thread that started it. Returns the server's
/// pid, or -errno.
pid_t keiji_spawn_server_launch(const char *path, int executable_fd, int socket_fd, pid_t scheduler_pid);

/// Sends one message on the (non-blocking) socket with `fd` attached when it is >= 0. Returns 0 or -errno
/// (-EAGAIN when the socket is full).
int keiji_spawn_send(int socket_fd, const void *bytes, size_t length, int fd);

/// The signal that stopped `pid`, a child of this process, if it stopped since the last call and is still stopped;
/// 0 otherwise. It does not reap: only stop reports are asked for (`waitid` with WSTOPPED | WNOHANG).
int keiji_spawn_child_stopped(pid_t pid);

/// A non-blocking, close-on-exec eventfd (eventfd is not in Swift's Glibc module). Returns it or -errno.
int keiji_spawn_wakeup_create(void);

#endif
