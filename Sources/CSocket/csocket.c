#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>

#include "csocket.h"

int keiji_accept_cloexec(int fd) {
    return accept4(fd, NULL, NULL, SOCK_CLOEXEC);
}
