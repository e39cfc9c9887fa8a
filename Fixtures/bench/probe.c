/* The peer benchmark's task: appends CLOCK_REALTIME, taken first thing, to the file named by argv[1]
 * ("<seconds>.<nanoseconds>\n", one write with O_APPEND), and exits. Every scheduler in
 * scripts/bench-peer runs this same binary, so the stamps measure when each run really started. */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (argc != 2) {
        fprintf(stderr, "usage: probe <stamp file>\n");
        return 2;
    }
    char line[40];
    int length = snprintf(line, sizeof line, "%lld.%09ld\n", (long long)now.tv_sec, now.tv_nsec);
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) { perror(argv[1]); return 1; }
    if (write(fd, line, (size_t)length) != length) { perror("write"); return 1; }
    return close(fd) == 0 ? 0 : 1;
}
