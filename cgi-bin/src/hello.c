/* The smallest CGI document response (RFC 3875 §6.2.1) in C: head and
 * body in a single write, so benchmarks measure the server, not stdio. */
#include <unistd.h>

int main(void)
{
    static const char msg[] = "Content-Type: text/plain\n\nhello\n";

    return write(STDOUT_FILENO, msg, sizeof msg - 1) == sizeof msg - 1 ? 0 : 1;
}
