// keiji-spawn-server: the scheduler's long-lived spawn helper (the pattern of Erlang's erl_child_setup and
// Python's forkserver).
//
//   keiji-spawn-server <scheduler-pid>     (fd 3: one end of a SOCK_SEQPACKET socketpair to the scheduler)
//
// The scheduler starts it once and sends it spawn requests (keiji_spawn_protocol.h). For each, it vforks the
// run in its own process group, with every signal at its default and unblocked, stdin from /dev/null and a pipe
// as stdout and stderr, and execs it; it reports the pid, then the exit status (it is the runs' parent and reaps
// them), killing whatever the run left in its group first.
//
// It relays each run's pipe into the run's log (passed with SCM_RIGHTS). A run never holds the log itself: a
// task's `echo … > /dev/stderr` reopens the pipe, where it reopened (and truncated) the log, and a run that
// clears O_APPEND on its stdout changes its pipe, not the description keiji appends through. Before it reports an
// exit, it relays what the pipe holds then, so the scheduler's end line comes after the run's output; what the
// run left running outside its group is relayed until the pipe's end of file, for at most a quarter of the
// descriptor limit such pipes (two descriptors each): past that the oldest is closed, said in its log. Either end of
// such a relay is told to the scheduler (`output_ended`), which keeps the file it writes uncompressed until then.
//
// Its runs are its children, and `kill $PPID` in a task reaches it: it blocks every signal it can and reads them
// through a signalfd. SIGTERM, SIGINT and SIGHUP from the scheduler (the parent-death signal comes from the
// scheduler's pid too) mean the scheduler is gone; any other signal, from anyone, is ignored and reported to
// the scheduler, which names the sender in its log. Only SIGKILL and SIGSTOP cannot be kept out: the scheduler
// continues this server within a second of a stop.
//
// When the scheduler goes away (end of file on the socket; SIGTERM from the parent-death signal), it sends
// SIGTERM to every group it started, SIGKILL after each run's grace period, and exits once all are gone. Its
// own runs get SIGKILL as their parent-death signal, so a kill -9 of this server kills every run it leads;
// the scheduler notices the end of file, kills what is left of the groups and starts a new server.
//
// A dated start (`not_before_ns`) is held until its instant, on a CLOCK_REALTIME timerfd: the scheduler sends each
// run as soon as its run.started is durable, a firing lead before its slot, so a run begins at its slot with
// this loop's precision (a timer wake-up and a vfork, as a C program pacing posix_spawn), whatever the
// scheduler's threads are doing then.
//
// It is plain C, linked statically without the Swift runtime, and single-threaded (so vfork is safe): a
// spawn costs one vfork + exec of the task, not a second exec of a helper per run.

#define _GNU_SOURCE
#include "keiji_spawn_protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { scheduler_socket = 3 };

/// What `sh` searches when the environment has no PATH (dash's default), so a direct exec finds what the
/// shell would have found.
static const char default_path[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct run {
    uint64_t tag;
    pid_t pid;  // also its process group id
    uint32_t grace_ms;
    long long kill_at_ms;  // after the scheduler went away: when SIGKILL follows the SIGTERM
    int output;  // the read end of its pipe; -1 once that has reached its end of file
};

static struct run *runs;
static size_t run_count, run_capacity;

/// A start held until its instant: the request's header, a copy of its payload, and the run's log descriptor.
struct dated_start {
    struct keiji_spawn_request request;
    char *payload;
    size_t length;
    int output_fd;
};

/// Held starts, in order of `not_before_ns` (requests come nearly in order: an insertion moves few).
static struct dated_start *dated;
static size_t dated_count, dated_capacity;
static int timer_fd = -1;
/// The instant `timer_fd` is set to (0: disarmed).
static uint64_t timer_armed_at;
static pid_t server_pid;
/// The scheduler: the one sender whose SIGTERM, SIGINT or SIGHUP is heeded.
static pid_t scheduler_pid;
/// The last signal reported as ignored, and its sender.
static struct { int signal; pid_t sender; } last_ignored;
static int devnull_fd = -1;
static int signal_fd = -1;
static int epoll_fd = -1;
static int scheduler_gone;
/// The descriptor limit the server was started with, restored in each run (the server raises its own: it holds a
/// pipe and a log per run).
static struct rlimit run_descriptor_limit;
static int descriptor_limit_raised;

/// Where each pipe's output goes, indexed by the pipe's read end: the run's log descriptor, or -1.
static int *log_of;
static size_t log_of_capacity;
enum { relay_chunk = 64 * 1024, drain_chunks = 16 };  // 16 chunks: the largest pipe (pipe-max-size) a run may make
static char relay_buffer[relay_chunk];

static char message[KEIJI_SPAWN_MAX_MESSAGE];
static char **vector;  // argv, NULL, envp, NULL: pointers into `message`
static size_t vector_capacity;

/// Written by the vfork child (which shares this memory) when it cannot exec; read once vfork returns.
static volatile int child_errno;
/// Beside `child_errno`: what the child could not do (enum keiji_spawn_failed_step).
static volatile uint32_t child_failed_step;

static uint64_t clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static long long now_ms(void) { return (long long)(clock_ns(CLOCK_MONOTONIC) / 1000000); }

static uint64_t realtime_ns(void) { return clock_ns(CLOCK_REALTIME); }

static void send_reply(const struct keiji_spawn_reply *r) {
    if (scheduler_gone) return;
    while (send(scheduler_socket, r, sizeof *r, MSG_NOSIGNAL) < 0) {
        if (errno == EINTR) continue;
        scheduler_gone = 1;  // EPIPE / ECONNRESET: the next read sees the end of file too
        return;
    }
}

static void reply_at(uint32_t kind, uint64_t tag, int32_t value, pid_t pid, int32_t wait_errno, uint64_t time_ns,
                     uint64_t monotonic_ns) {
    struct keiji_spawn_reply r = {.kind = kind, .value = value, .tag = tag, .pid = pid, .wait_errno = wait_errno,
                                  .time_ns = time_ns, .monotonic_ns = monotonic_ns};
    send_reply(&r);
}

static void reply(uint32_t kind, uint64_t tag, int32_t value, pid_t pid, int32_t wait_errno) {
    reply_at(kind, tag, value, pid, wait_errno, 0, 0);
}

/// A start that failed at `step` (enum keiji_spawn_failed_step) with errno `code`.
static void reply_failed(uint64_t tag, int32_t code, uint32_t step) {
    struct keiji_spawn_reply r = {.kind = KEIJI_SPAWN_FAILED, .value = code, .tag = tag, .failed_step = step};
    send_reply(&r);
}

static struct run *find_run(uint64_t tag) {
    for (size_t i = 0; i < run_count; i++) if (runs[i].tag == tag) return &runs[i];
    return NULL;
}

static int add_run(uint64_t tag, pid_t pid, uint32_t grace_ms, int output) {
    if (run_count == run_capacity) {
        size_t capacity = run_capacity ? run_capacity * 2 : 64;
        struct run *grown = realloc(runs, capacity * sizeof *runs);
        if (!grown) return -1;
        runs = grown;
        run_capacity = capacity;
    }
    runs[run_count++] = (struct run){.tag = tag, .pid = pid, .grace_ms = grace_ms, .kill_at_ms = -1, .output = output};
    return 0;
}

// MARK: - Output

/// Relays the run's pipe `pipe_fd` into `log_fd` (the server then owns both) as the pipe has output.
static int add_relay(int pipe_fd, int log_fd) {
    if ((size_t)pipe_fd >= log_of_capacity) {
        size_t capacity = log_of_capacity ? log_of_capacity : 256;
        while (capacity <= (size_t)pipe_fd) capacity *= 2;
        int *grown = realloc(log_of, capacity * sizeof *log_of);
        if (!grown) return ENOMEM;
        for (size_t i = log_of_capacity; i < capacity; i++) grown[i] = -1;
        log_of = grown;
        log_of_capacity = capacity;
    }
    struct epoll_event event = {.events = EPOLLIN, .data.fd = pipe_fd};
    if (fcntl(pipe_fd, F_SETFL, O_NONBLOCK) != 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, pipe_fd, &event) != 0) return errno;
    log_of[pipe_fd] = log_fd;
    return 0;
}

/// Relays whose run has exited with its pipe still open (held by processes the run left outside its group), oldest
/// first. Each costs the pipe and a log descriptor: unbounded, they took every descriptor, and every start failed.
struct leftover {
    int pipe_fd;
    pid_t run_pid;
    uint64_t tag;  // the run's, for `output_ended`
};
static struct leftover *leftovers;
static size_t leftover_count, leftover_capacity;

/// Drops the pipe from the leftovers; returns whether it was one, and its run's tag in `tag`.
static int forget_leftover(int pipe_fd, uint64_t *tag) {
    for (size_t i = 0; i < leftover_count; i++) {
        if (leftovers[i].pipe_fd != pipe_fd) continue;
        *tag = leftovers[i].tag;
        memmove(&leftovers[i], &leftovers[i + 1], (leftover_count - i - 1) * sizeof *leftovers);
        leftover_count--;
        return 1;
    }
    return 0;
}

/// Closes the pipe and its log. A leftover's end is told to the scheduler once its log is closed here: until then it
/// keeps that file plain (a segment compressed under it lost all the leftover wrote later).
static void end_relay(int pipe_fd) {
    uint64_t tag = 0;
    int left_behind = forget_leftover(pipe_fd, &tag);
    close(log_of[pipe_fd]);
    log_of[pipe_fd] = -1;
    close(pipe_fd);  // and out of the epoll set
    for (size_t i = 0; i < run_count; i++) if (runs[i].output == pipe_fd) runs[i].output = -1;
    if (left_behind) reply(KEIJI_SPAWN_OUTPUT_ENDED, tag, 0, 0, 0);
}

/// Copies up to `chunks` reads of the pipe into its log, without waiting: stops once the pipe is empty. A write the
/// log refuses (a full disk) drops the chunk, as keiji's own lines are dropped then. At the end of file, the relay
/// ends. A descriptor that is no longer a relay (an event of a pipe closed in the same wake-up) is left alone.
static void relay(int pipe_fd, int chunks) {
    if (pipe_fd < 0 || (size_t)pipe_fd >= log_of_capacity || log_of[pipe_fd] < 0) return;
    for (int i = 0; i < chunks; i++) {
        ssize_t n = read(pipe_fd, relay_buffer, sizeof relay_buffer);
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) { end_relay(pipe_fd); return; }
        for (ssize_t done = 0, written; done < n; done += written) {
            written = write(log_of[pipe_fd], relay_buffer + done, (size_t)(n - done));
            if (written <= 0) break;
        }
        if (n < (ssize_t)sizeof relay_buffer) return;  // that was all the pipe held
    }
}

/// How many leftover relays are kept: a quarter of the descriptor limit (half of it in descriptors), so that runs
/// always have the rest.
static size_t leftover_ceiling(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
    return limit.rlim_cur >= 8 ? (size_t)(limit.rlim_cur / 4) : 1;
}

/// Stops relaying the oldest leftover pipe, after relaying what it holds: its writers get EPIPE (SIGPIPE), as under
/// cron when no one reads. Said once in its log, dated as keiji's lines are, on a line of its own.
static void cut_oldest_leftover(size_t ceiling) {
    int pipe_fd = leftovers[0].pipe_fd;
    pid_t run_pid = leftovers[0].run_pid;
    relay(pipe_fd, drain_chunks);
    if (log_of[pipe_fd] < 0) return;  // its end of file came meanwhile
    int log_fd = log_of[pipe_fd];
    struct stat info;
    char last = '\n';
    if (fstat(log_fd, &info) == 0 && info.st_size > 0 && pread(log_fd, &last, 1, info.st_size - 1) != 1) last = '\n';
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r(&now.tv_sec, &utc);
    char date[32], line[400];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &utc);
    int length = snprintf(line, sizeof line,
        "%s%s.%03ldZ [keiji] no longer relaying the output of processes run pid %d left running: keiji-spawn-server "
        "relays at most %zu pipes of processes runs left behind (a quarter of its descriptor limit); they now get EPIPE\n",
        last == '\n' ? "" : "\n", date, now.tv_nsec / 1000000, (int)run_pid, ceiling);
    if (length >= (int)sizeof line) length = (int)sizeof line - 1;
    if (length > 0 && write(log_fd, line, (size_t)length) < 0) {}  // a full disk drops it, as it drops output
    end_relay(pipe_fd);
}

/// Keeps relaying the pipe of the run `run_pid` (`tag`), which has exited, cutting the oldest such relays past the ceiling.
static void keep_leftover(int pipe_fd, pid_t run_pid, uint64_t tag) {
    size_t ceiling = leftover_ceiling();
    while (leftover_count > 0 && leftover_count >= ceiling) cut_oldest_leftover(ceiling);
    if (leftover_count == leftover_capacity) {
        size_t capacity = leftover_capacity ? leftover_capacity * 2 : 64;
        struct leftover *grown = realloc(leftovers, capacity * sizeof *leftovers);
        if (!grown) { end_relay(pipe_fd); return; }
        leftovers = grown;
        leftover_capacity = capacity;
    }
    leftovers[leftover_count++] = (struct leftover){.pipe_fd = pipe_fd, .run_pid = run_pid, .tag = tag};
}

// MARK: - The child side of vfork: system calls only, no allocation, no return.

static void exec_with_shell_fallback(const char *file, char *const argv[], char *const envp[], int argc) {
    execve(file, argv, envp);
    if (errno != ENOEXEC) return;
    // No #! line: run it with sh, as execvp and the shell do.
    char *shell_argv[argc + 2];
    shell_argv[0] = (char *)"sh";
    shell_argv[1] = (char *)file;
    for (int i = 1; i < argc; i++) shell_argv[i + 1] = argv[i];
    shell_argv[argc + 1] = NULL;
    execve("/bin/sh", shell_argv, envp);
}

/// execvp's search, with the run's own PATH: EACCES is remembered and the search goes on, as the shell does.
static void exec_searching(const char *name, const char *path, char *const argv[], char *const envp[], int argc) {
    size_t name_length = strlen(name);
    char candidate[PATH_MAX];
    int denied = 0;
    for (const char *start = path;; ) {
        const char *end = strchrnul(start, ':');
        size_t length = (size_t)(end - start);
        if (length == 0) { start = "."; length = 1; }  // an empty entry is the current directory
        if (length + 1 + name_length + 1 <= sizeof candidate) {
            memcpy(candidate, start, length);
            candidate[length] = '/';
            memcpy(candidate + length + 1, name, name_length + 1);
            exec_with_shell_fallback(candidate, argv, envp, argc);
            switch (errno) {
            case EACCES: denied = 1; break;
            case ENOENT: case ENOTDIR: case ESTALE: case ENODEV: case ETIMEDOUT: case ENAMETOOLONG: break;
            default: return;
            }
        }
        if (*end == '\0') break;
        start = end + 1;
    }
    errno = denied ? EACCES : ENOENT;
}

static void close_descriptors_from(int lowest) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) == 0) return;
#endif
    for (int fd = lowest; fd < 65536; fd++) close(fd);
}

static _Noreturn void become_run(const char *program, const char *cwd, char *const argv[], char *const envp[], int argc,
                                 int output_fd, uint32_t flags, const char *path) {
    if (descriptor_limit_raised && setrlimit(RLIMIT_NOFILE, &run_descriptor_limit) != 0) goto fail;
    if (setpgid(0, 0) != 0) goto fail;
    // Dies with this server; then the scheduler kills the rest of the group.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) goto fail;
    if (getppid() != server_pid) { errno = ESRCH; goto fail; }  // the server died before prctl
    if (cwd[0] != '\0' && chdir(cwd) != 0) {
        child_failed_step = KEIJI_SPAWN_STEP_CHDIR;
        goto fail;
    }
    if (dup2(devnull_fd, 0) < 0 || dup2(output_fd, 1) < 0 || dup2(output_fd, 2) < 0) goto fail;
    close_descriptors_from(3);
    sigset_t none;
    sigemptyset(&none);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(unsigned long));
    if ((flags & KEIJI_SPAWN_SEARCH_PATH) && strchr(program, '/') == NULL) {
        exec_searching(program, path, argv, envp, argc);
    } else {
        exec_with_shell_fallback(program, argv, envp, argc);
    }
fail:
    child_errno = errno ? errno : EINVAL;
    _exit(127);
}

// MARK: - Requests

/// Splits `count` NUL-terminated strings off `*cursor`; NULL if the payload ends first.
static const char *next_string(const char **cursor, const char *end) {
    const char *start = *cursor;
    const char *nul = memchr(start, '\0', (size_t)(end - start));
    if (!nul) return NULL;
    *cursor = nul + 1;
    return start;
}

/// Starts the run with a new pipe as its output, relayed into `log_fd`, which it takes (closed if the run does not start).
static void start_run(const struct keiji_spawn_request *request, const char *payload, const char *end, int log_fd) {
    if (log_fd < 0) { reply(KEIJI_SPAWN_FAILED, request->tag, EBADF, 0, 0); return; }
    int output[2] = {-1, -1};
    int refused = request->argc == 0 || request->argc > (uint32_t)(end - payload) || request->envc > (uint32_t)(end - payload)
        ? EINVAL : 0;
    size_t needed = (size_t)request->argc + request->envc + 2;
    if (!refused && needed > vector_capacity) {
        char **grown = realloc(vector, needed * sizeof *vector);
        if (grown) {
            vector = grown;
            vector_capacity = needed;
        } else {
            refused = ENOMEM;
        }
    }
    if (refused) goto refuse;
    const char *cursor = payload;
    const char *program = next_string(&cursor, end);
    const char *cwd = program ? next_string(&cursor, end) : NULL;
    int complete = cwd != NULL;
    char **argv = vector;
    char **envp = vector + request->argc + 1;
    for (uint32_t i = 0; complete && i < request->argc; i++) complete = (argv[i] = (char *)next_string(&cursor, end)) != NULL;
    argv[request->argc] = NULL;
    const char *path = default_path;
    for (uint32_t i = 0; complete && i < request->envc; i++) {
        complete = (envp[i] = (char *)next_string(&cursor, end)) != NULL;
        if (complete && strncmp(envp[i], "PATH=", 5) == 0) path = envp[i] + 5;
    }
    envp[request->envc] = NULL;
    if (!complete) { refused = EINVAL; goto refuse; }
    if (pipe2(output, O_CLOEXEC) != 0) { refused = errno; goto refuse; }

    child_errno = 0;
    child_failed_step = KEIJI_SPAWN_STEP_START;
    uint64_t started_ns = realtime_ns(), started_monotonic_ns = clock_ns(CLOCK_MONOTONIC);
    pid_t pid = vfork();
    if (pid == 0) become_run(program, cwd, argv, envp, (int)request->argc, output[1], request->flags, path);
    close(output[1]);  // now only the run writes to it: its end of file is the run's (and what it left running)
    output[1] = -1;
    if (pid < 0) { refused = errno; goto refuse; }
    if (child_errno != 0) {
        int code = child_errno;
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        close(output[0]);
        close(log_fd);
        reply_failed(request->tag, code, child_failed_step);
        return;
    }
    refused = add_relay(output[0], log_fd);
    if (!refused && add_run(request->tag, pid, request->grace_ms, output[0]) != 0) {
        end_relay(output[0]);  // closes the pipe and the log
        output[0] = log_fd = -1;
        refused = ENOMEM;
    }
    if (refused) {
        // Cannot relay or track it: do not leave an untracked run behind.
        kill(-pid, SIGKILL);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        goto refuse;
    }
    reply_at(KEIJI_SPAWN_STARTED, request->tag, 0, pid, 0, started_ns, started_monotonic_ns);
    return;
refuse:
    for (int i = 0; i < 2; i++) if (output[i] >= 0) close(output[i]);
    if (log_fd >= 0) close(log_fd);
    reply(KEIJI_SPAWN_FAILED, request->tag, refused, 0, 0);
}

// MARK: - Dated starts

/// Sets the timer to the earliest held start, or disarms it.
static void arm_timer(void) {
    uint64_t at = dated_count ? dated[0].request.not_before_ns : 0;
    if (at == timer_armed_at) return;
    struct itimerspec spec = {0};
    spec.it_value.tv_sec = (time_t)(at / 1000000000ULL);
    spec.it_value.tv_nsec = (long)(at % 1000000000ULL);
    if (timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &spec, NULL) == 0) timer_armed_at = at;
}

/// Holds a start until its instant. Keeps `output_fd` (the caller must not close it) unless it fails.
static int hold(const struct keiji_spawn_request *request, const char *payload, size_t length, int output_fd) {
    if (dated_count >= KEIJI_SPAWN_MAX_DATED) return EAGAIN;
    if (dated_count == dated_capacity) {
        size_t capacity = dated_capacity ? dated_capacity * 2 : 64;
        struct dated_start *grown = realloc(dated, capacity * sizeof *dated);
        if (!grown) return ENOMEM;
        dated = grown;
        dated_capacity = capacity;
    }
    char *copy = malloc(length ? length : 1);
    if (!copy) return ENOMEM;
    memcpy(copy, payload, length);
    size_t at = dated_count;
    while (at > 0 && dated[at - 1].request.not_before_ns > request->not_before_ns) at--;
    memmove(&dated[at + 1], &dated[at], (dated_count - at) * sizeof *dated);
    dated[at] = (struct dated_start){.request = *request, .payload = copy, .length = length, .output_fd = output_fd};
    dated_count++;
    arm_timer();
    return 0;
}

/// Drops the held start at `index` (a cancel): its payload and its log descriptor.
static void release(size_t index) {
    free(dated[index].payload);
    close(dated[index].output_fd);
    memmove(&dated[index], &dated[index + 1], (dated_count - index - 1) * sizeof *dated);
    dated_count--;
}

/// Starts every held start whose instant has come, earliest first, and drops them from the front at once (one
/// move of the rest, however many came due together).
static void start_due(void) {
    uint64_t expirations;
    while (read(timer_fd, &expirations, sizeof expirations) > 0) {}
    timer_armed_at = 0;  // fired (or about to be set again below)
    for (;;) {
        uint64_t now = realtime_ns();
        size_t due = 0;
        while (due < dated_count && dated[due].request.not_before_ns <= now) due++;
        if (due == 0) break;
        for (size_t i = 0; i < due; i++) {
            start_run(&dated[i].request, dated[i].payload, dated[i].payload + dated[i].length, dated[i].output_fd);
            free(dated[i].payload);
        }
        memmove(&dated[0], &dated[due], (dated_count - due) * sizeof *dated);
        dated_count -= due;
    }
    arm_timer();
}

static void cancel(uint64_t tag) {
    for (size_t i = 0; i < dated_count; i++) {
        if (dated[i].request.tag != tag) continue;
        release(i);
        arm_timer();
        reply(KEIJI_SPAWN_CANCELLED, tag, 0, 0, 0);
        return;
    }
}

/// Reads and serves one request. Returns 0 once the scheduler is gone (end of file or a broken socket).
static int serve_request(void) {
    struct iovec iov = {.iov_base = message, .iov_len = sizeof message};
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int) * 4)];
    } control;
    struct msghdr header = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes, .msg_controllen = sizeof control.bytes};
    ssize_t n = recvmsg(scheduler_socket, &header, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n == 0) return 0;
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    int output_fd = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&header); c; c = CMSG_NXTHDR(&header, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *fds = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (output_fd < 0) output_fd = fds[i];
            else close(fds[i]);
        }
    }
    struct keiji_spawn_request request;
    uint64_t now;
    if ((size_t)n >= sizeof request) {
        memcpy(&request, message, sizeof request);
        if (header.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
            // A descriptor that could not be received (this process is out of them) is no fault of the run's.
            int refused = header.msg_flags & MSG_CTRUNC ? EMFILE : E2BIG;
            if (request.kind == KEIJI_SPAWN_START) reply(KEIJI_SPAWN_FAILED, request.tag, refused, 0, 0);
        } else if (request.kind == KEIJI_SPAWN_START && request.not_before_ns > (now = realtime_ns())) {
            int refused = request.not_before_ns - now > KEIJI_SPAWN_MAX_DATED_AHEAD_NS ? ERANGE
                : output_fd < 0 ? EBADF
                : hold(&request, message + sizeof request, (size_t)n - sizeof request, output_fd);
            if (refused) reply(KEIJI_SPAWN_FAILED, request.tag, refused, 0, 0);
            else output_fd = -1;  // held with the start
        } else if (request.kind == KEIJI_SPAWN_START) {
            start_run(&request, message + sizeof request, message + n, output_fd);
            output_fd = -1;  // the run's now
        } else if (request.kind == KEIJI_SPAWN_CANCEL) {
            cancel(request.tag);
        } else if (request.kind == KEIJI_SPAWN_SIGNAL) {
            struct run *run = find_run(request.tag);
            if (run && request.signal > 0 && request.signal < NSIG) kill(-run->pid, request.signal);
        }
    }
    if (output_fd >= 0) close(output_fd);
    return 1;
}

/// Reaps every run that has exited. Its leader is still a zombie when the group is killed, so the group id
/// cannot have been reused: what the run left behind in its group goes with it.
static void reap_exited(void) {
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
        pid_t pid = info.si_pid;
        kill(-pid, SIGKILL);
        int status = 0, wait_errno = 0;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno == EINTR) continue;
            wait_errno = errno;
            break;
        }
        for (size_t i = 0; i < run_count; i++) {
            if (runs[i].pid != pid) continue;
            relay(runs[i].output, drain_chunks);  // its output before the scheduler's end line
            // A drain ends at a short read; one more read finds the end of file unless something the run left
            // behind holds the pipe. Counted a leftover meanwhile, every run's pipe could push out a real one.
            relay(runs[i].output, 1);
            if (runs[i].output >= 0) keep_leftover(runs[i].output, pid, runs[i].tag);  // no end of file yet: left behind
            struct keiji_spawn_reply exited = {.kind = KEIJI_SPAWN_EXITED, .value = status, .tag = runs[i].tag, .pid = pid,
                                               .wait_errno = wait_errno, .output_open = runs[i].output >= 0};
            send_reply(&exited);
            runs[i] = runs[--run_count];
            break;
        }
    }
}

/// Drains the signal descriptor; returns 1 if the scheduler sent a termination signal (its parent-death signal
/// carries its pid). Any other signal (a task's `kill -USR1 $PPID`) is reported, and changes nothing.
static int drain_signals(void) {
    int terminate = 0;
    struct signalfd_siginfo info;
    while (read(signal_fd, &info, sizeof info) == (ssize_t)sizeof info) {
        int signal = (int)info.ssi_signo;
        if (signal == SIGCHLD) continue;  // reap_exited looks for itself
        if ((signal == SIGTERM || signal == SIGINT || signal == SIGHUP) && (pid_t)info.ssi_pid == scheduler_pid) {
            terminate = 1;
        } else if (signal != last_ignored.signal || (pid_t)info.ssi_pid != last_ignored.sender) {
            // Once, not once a signal: a task that sends them in a loop does not flood the scheduler's log.
            last_ignored.signal = signal;
            last_ignored.sender = (pid_t)info.ssi_pid;
            reply(KEIJI_SPAWN_IGNORED_SIGNAL, 0, signal, (pid_t)info.ssi_pid, 0);
        }
    }
    return terminate;
}

/// Waits up to `timeout_ms` (-1: as long as it takes) and serves what came: due starts first (they have an instant to
/// keep), then exits, requests and output. Returns 0 once the scheduler is gone.
static int serve_events(int timeout_ms) {
    struct epoll_event events[64];
    int count = epoll_wait(epoll_fd, events, 64, timeout_ms);
    if (count < 0) return errno == EINTR;
    int going = 1;
    for (int i = 0; i < count; i++) if (events[i].data.fd == timer_fd) start_due();
    for (int i = 0; i < count; i++) {
        int fd = events[i].data.fd;
        if (fd == timer_fd) continue;
        if (fd == signal_fd) {
            if (drain_signals()) going = 0;
            reap_exited();
        } else if (fd == scheduler_socket) {
            if (!serve_request()) going = 0;
        } else {
            relay(fd, 1);  // one chunk: a run that writes without pause does not hold up the others
        }
    }
    return going && !scheduler_gone;
}

/// The scheduler is gone: SIGTERM to every group, SIGKILL after its grace period, until all are reaped (their
/// output relayed meanwhile). Held starts never begin.
static void stop_every_run(void) {
    scheduler_gone = 1;
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, scheduler_socket, NULL);
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, timer_fd, NULL);
    long long now = now_ms();
    for (size_t i = 0; i < run_count; i++) {
        kill(-runs[i].pid, SIGTERM);
        runs[i].kill_at_ms = now + runs[i].grace_ms;
    }
    while (run_count > 0) {
        reap_exited();
        now = now_ms();
        for (size_t i = 0; i < run_count; i++) if (now >= runs[i].kill_at_ms) kill(-runs[i].pid, SIGKILL);
        if (run_count == 0) break;
        serve_events(20);
    }
}

int main(int argc, char **argv) {
    // Descriptor 4 is this program's own file, which the scheduler opened at its start and exec'd by
    // /proc/self/fd/4 (so an in-place upgrade cannot change the helper under it): not needed past the exec. That
    // exec named the process "4": it takes back its own name for ps, top and pgrep.
    close(4);
    prctl(PR_SET_NAME, "keiji-spawn-server");
    server_pid = getpid();
    scheduler_pid = argc > 1 ? (pid_t)strtol(argv[1], NULL, 10) : getppid();
    // Default dispositions (the scheduler's runtime ignores SIGPIPE, and an ignored signal survives exec), and
    // every signal blocked, read through signalfd; each run gets an empty mask before its exec.
    // glibc refuses to touch its own two real-time signals (32, 33), which a threaded parent may leave
    // ignored, and leaves them out of its signal sets: the raw system calls reset and block them too.
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        struct { void *handler; unsigned long flags; void *restorer; unsigned long mask; } dfl = {0};
        syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof dfl.mask);
    }
    unsigned long every_signal = ~0UL;  // the kernel leaves SIGKILL and SIGSTOP out
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &every_signal, NULL, sizeof every_signal);
    sigset_t watched;
    memset(&watched, 0xff, sizeof watched);
    signal_fd = signalfd(-1, &watched, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd < 0) { fprintf(stderr, "keiji-spawn-server: signalfd: %s\n", strerror(errno)); return 71; }
    if (fcntl(scheduler_socket, F_SETFD, FD_CLOEXEC) != 0) {
        fprintf(stderr, "keiji-spawn-server: no scheduler socket on descriptor 3 (started by hand?)\n");
        return 64;
    }
    devnull_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull_fd < 0) { fprintf(stderr, "keiji-spawn-server: /dev/null: %s\n", strerror(errno)); return 71; }
    timer_fd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK);
    if (timer_fd < 0) { fprintf(stderr, "keiji-spawn-server: timerfd: %s\n", strerror(errno)); return 71; }
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) { fprintf(stderr, "keiji-spawn-server: epoll: %s\n", strerror(errno)); return 71; }
    int watched_fds[] = {scheduler_socket, signal_fd, timer_fd};
    for (int i = 0; i < 3; i++) {
        struct epoll_event event = {.events = EPOLLIN, .data.fd = watched_fds[i]};
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, watched_fds[i], &event) != 0) {
            fprintf(stderr, "keiji-spawn-server: epoll: %s\n", strerror(errno));
            return 71;
        }
    }
    // A pipe and a log per run: the server takes its hard descriptor limit, and each run gets back the limit it
    // was started with (a program that select()s needs descriptors below 1024).
    if (getrlimit(RLIMIT_NOFILE, &run_descriptor_limit) == 0 && run_descriptor_limit.rlim_cur < run_descriptor_limit.rlim_max) {
        struct rlimit raised = {.rlim_cur = run_descriptor_limit.rlim_max, .rlim_max = run_descriptor_limit.rlim_max};
        descriptor_limit_raised = setrlimit(RLIMIT_NOFILE, &raised) == 0;
    }
    // Past these checks the helper writes nothing to stderr. It lets go of the scheduler's (its log), or a roll of
    // that log at the scheduler's start would leave the rolled file deleted but held open, its space never freed.
    int quiet = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (quiet >= 0) {
        dup2(quiet, STDERR_FILENO);
        close(quiet);
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != scheduler_pid) return 0;  // the scheduler died before prctl
    // Every run's umask, as cron and systemd give: it was that of whichever shell ran `keiji system --start`. The
    // helper itself creates no file.
    umask(022);

    reply(KEIJI_SPAWN_READY, 0, KEIJI_SPAWN_PROTOCOL_VERSION, server_pid, 0);
    while (serve_events(-1)) {}
    stop_every_run();
    return 0;
}
