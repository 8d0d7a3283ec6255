/* A large streamed body: BYTES of 'x' (default 1 MiB, from ?bytes=N) in
 * 64 KiB writes and no Content-Length, so the server must stream it
 * chunked; used to check that memory stays flat however big it gets. */
#include <errno.h>
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

/* Finds bytes=N among the &-separated pairs of QUERY_STRING (RFC 3875 §4.1.7). */
static unsigned long long requested_bytes(void)
{
    const char *q = getenv("QUERY_STRING");

    while (q && *q) {
        if (strncmp(q, "bytes=", 6) == 0)
            return strtoull(q + 6, NULL, 10);
        q = strchr(q, '&');
        if (q)
            q++;
    }
    return 1024 * 1024;
}

int main(void)
{
    static char buf[CHUNK];
    static const char head[] = "Content-Type: text/plain\n\n";
    unsigned long long left = requested_bytes();

    if (write_all(head, sizeof head - 1) < 0)
        return 1;
    memset(buf, 'x', sizeof buf);
    while (left > 0) {
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        if (write_all(buf, n) < 0)
            return 1;
        left -= n;
    }
    return 0;
}
