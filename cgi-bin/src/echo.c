/* Echoes the request body (RFC 3875 §4.2): reads exactly CONTENT_LENGTH
 * bytes, since the server need not close stdin after them, and streams
 * them back chunk by chunk so a large body never sits in memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static int write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(void)
{
    static char buf[CHUNK];
    const char *cl = getenv("CONTENT_LENGTH");
    unsigned long long left = cl ? strtoull(cl, NULL, 10) : 0;
    int n = snprintf(buf, sizeof buf,
                     "Content-Type: application/octet-stream\n"
                     "Content-Length: %llu\n\n", left);

    if (write_all(buf, (size_t)n) < 0)
        return 1;
    while (left > 0) {
        size_t want = left < CHUNK ? (size_t)left : CHUNK;
        ssize_t r = read(STDIN_FILENO, buf, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "echo: body ended %llu bytes early\n", left);
            return 1;
        }
        if (write_all(buf, (size_t)r) < 0)
            return 1;
        left -= (unsigned long long)r;
    }
    return 0;
}
