#ifndef KEIJI_SPAWN_H
#define KEIJI_SPAWN_H

#include <spawn.h>
#include <sys/types.h>

/// Starts `path` with `argv` and `envp` in a new process group (pgid = pid), with every signal unblocked
/// and at its default disposition, in `cwd`, with stdin from /dev/null and stdout/stderr on `output_fd`.
/// With `die_with_parent`, the child gets SIGKILL when the *thread* that called this exits (PR_SET_PDEATHSIG):
/// call it from a thread that lives as long as the process. Every other descriptor is closed in the child.
/// Returns the pid, or -errno (the exec's errno when the program could not be started).
pid_t keiji_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, int output_fd,
                  int die_with_parent);

/// Adds "close every descriptor from `lowest` up" to spawn file actions (glibc 2.34+), so a daemon started by
/// the CLI keeps none of the CLI's descriptors. Returns 0 or an errno (ENOSYS on older C libraries).
int keiji_spawn_file_actions_closefrom(posix_spawn_file_actions_t *actions, int lowest);

/// An epoll set that watches children through pidfds (Linux 5.3+). Returns the epoll fd or -errno.
int keiji_child_watch_create(void);

/// Adds `pid` (a child of this process, running or zombie) to the set. Returns 0 or -errno.
int keiji_child_watch_add(int watch, pid_t pid);

/// Blocks until at least one watched child has exited; stores up to `capacity` such pids in `pids` (each is
/// removed from the set and ready for waitpid without blocking). Returns the count, or -errno.
int keiji_child_watch_wait(int watch, pid_t *pids, int capacity);

#endif
