#ifndef KEIJI_CSOCKET_H
#define KEIJI_CSOCKET_H

/// accept4(fd, NULL, NULL, SOCK_CLOEXEC): Swift's Glibc module does not import accept4 (it needs _GNU_SOURCE).
/// Close-on-exec from the start matters wherever the bus runs beside threads that spawn processes (the
/// tests run buses in-process): an accept followed by fcntl leaves a moment in which a child inherits the
/// socket and keeps the connection open after the bus closes it.
int keiji_accept_cloexec(int fd);

#endif
