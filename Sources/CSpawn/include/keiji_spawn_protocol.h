#ifndef KEIJI_SPAWN_PROTOCOL_H
#define KEIJI_SPAWN_PROTOCOL_H

// The messages between the scheduler and keiji-spawn-server, one per SOCK_SEQPACKET datagram on a socketpair
// (both ends are the same build on the same machine: native byte order, no versioning beyond `ready`).
//
// scheduler -> server
//   start:  header + payload "program\0cwd\0" argv[argc] ("arg\0"...) envp[envc] ("KEY=value\0"...), with the
//           run's log descriptor attached (SCM_RIGHTS): the server relays the run's stdout and stderr (a pipe)
//           into it. With
//           `not_before_ns` set, the server holds the start until that CLOCK_REALTIME instant (a dated start:
//           the scheduler sends a run as soon as its run.started is durable, up to its firing lead early, and
//           the run begins at its slot to the precision of this single-threaded C loop, not of the scheduler's).
//   signal: header only; the signal goes to the process group of the run `tag`, if it is still running.
//   cancel: header only; a dated start `tag` still held is dropped and answered `cancelled`; a start already
//           made (or unknown) is left alone, and its `started` (or `failed`) answer stands.
// server -> scheduler
//   ready   (once, first): value = protocol version, pid = the server's pid.
//   started: pid = the run's pid (= its process group id), time_ns and monotonic_ns = CLOCK_REALTIME and
//            CLOCK_MONOTONIC just before its vfork.
//   failed:  value = errno of the failed start, failed_step = what failed (the run's folder or the start);
//            nothing runs.
//   exited:  pid, value = the raw wait status, or wait_errno if waitpid failed. The group has been killed, and
//            what the run's pipe held then is in its log. output_open = 1 when processes the run left outside its
//            group still hold its pipe: the server goes on relaying it into the log, and says `output_ended` after.
//   output_ended: the pipe of the run `tag`, which exited with output_open, reached its end of file or was cut (at
//            the ceiling of such pipes): nothing more of that run is written into its log. Not sent once the
//            scheduler is gone.
//   cancelled: the dated start `tag` was dropped before it began (a `cancel`); nothing runs.
//   ignored_signal: value = a signal the server ignored (all but the scheduler's SIGTERM, SIGINT and SIGHUP, and
//            SIGCHLD), pid = its sender (0: the kernel); tag = 0. The server goes on as before.

#include <stdint.h>

/// 3: replies carry `failed_step` (48 bytes; 40 before). 4: `ignored_signal`. 5: `output_open` and `output_ended`.
#define KEIJI_SPAWN_PROTOCOL_VERSION 5
/// The largest start message (header + payload) the server reads; the scheduler refuses longer requests.
#define KEIJI_SPAWN_MAX_MESSAGE (256 * 1024)
/// How far ahead a dated start may be (the scheduler sends its runs a firing lead early, 45 ms by default);
/// a later one is refused with ERANGE rather than held with its log descriptor open.
#define KEIJI_SPAWN_MAX_DATED_AHEAD_NS (3600ULL * 1000000000ULL)
/// How many dated starts the server holds at once; more are refused with EAGAIN.
#define KEIJI_SPAWN_MAX_DATED 65536

enum keiji_spawn_request_kind {
    KEIJI_SPAWN_START = 1,
    KEIJI_SPAWN_SIGNAL = 2,
    KEIJI_SPAWN_CANCEL = 3,
};

enum keiji_spawn_request_flags {
    /// Look `program` up in the PATH of the run's environment (as execvp does) when it has no '/'.
    KEIJI_SPAWN_SEARCH_PATH = 1,
};

struct keiji_spawn_request {
    uint32_t kind;
    uint32_t flags;
    uint64_t tag;
    uint32_t argc;
    uint32_t envc;
    /// start: how long the group gets between SIGTERM and SIGKILL when the scheduler goes away.
    uint32_t grace_ms;
    /// signal: the signal to send to the run's group.
    int32_t signal;
    /// start: begin at this CLOCK_REALTIME instant (nanoseconds since the epoch), not before; 0: at once.
    uint64_t not_before_ns;
};

enum keiji_spawn_reply_kind {
    KEIJI_SPAWN_READY = 1,
    KEIJI_SPAWN_STARTED = 2,
    KEIJI_SPAWN_FAILED = 3,
    KEIJI_SPAWN_EXITED = 4,
    KEIJI_SPAWN_CANCELLED = 5,
    KEIJI_SPAWN_IGNORED_SIGNAL = 6,
    KEIJI_SPAWN_OUTPUT_ENDED = 7,
};

/// What a `failed` start could not do: the scheduler's message names the folder or the program.
enum keiji_spawn_failed_step {
    /// Start the program: the exec, or what comes before it (vfork, the group, the descriptors, the request).
    KEIJI_SPAWN_STEP_START = 0,
    /// Enter the run's folder (`cwd`): it is missing, or not one to enter.
    KEIJI_SPAWN_STEP_CHDIR = 1,
};

struct keiji_spawn_reply {
    uint32_t kind;
    int32_t value;
    uint64_t tag;
    int32_t pid;
    int32_t wait_errno;
    /// started: CLOCK_REALTIME (nanoseconds since the epoch) just before the run's vfork: its lateness.
    uint64_t time_ns;
    /// started: CLOCK_MONOTONIC at the same moment: where its duration and timeout count from.
    uint64_t monotonic_ns;
    /// failed: an `enum keiji_spawn_failed_step`.
    uint32_t failed_step;
    /// exited: 1 when the run's pipe is still open (an `output_ended` follows), else 0. In the padding: still 48 bytes.
    uint32_t output_open;
};

#endif
