/* hello.c as a FastCGI responder (FastCGI spec §6.2): the same bytes, written
 * once per request inside libfcgi's accept loop. The listening socket is fd 0
 * (FCGI_LISTENSOCK_FILENO, spec §2.2), the way a FastCGI server starts its
 * workers; FCGX_Finish_r keeps the connection for the next request when the
 * server set FCGI_KEEP_CONN (spec §5.1).
 *
 * When fd 0 is not a listening socket the program was started as plain CGI
 * and writes the document once, exactly as hello.c does. FCGX_Accept_r does
 * not fall back to CGI by itself (only fcgi_stdio.h's FCGI_Accept does): on a
 * pipe or /dev/null it fails with ENOTSOCK, so the FCGX_IsCGI test comes first.
 * Link with -lfcgi (Debian: libfcgi-dev). */
#include <fcgiapp.h>
#include <unistd.h>

static const char msg[] = "Content-Type: text/plain\n\nhello\n";

int main(void)
{
    FCGX_Request req;
    char buf[4096];

    if (FCGX_IsCGI())
        return write(STDOUT_FILENO, msg, sizeof msg - 1) == sizeof msg - 1 ? 0 : 1;

    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0)
        return 1;
    while (FCGX_Accept_r(&req) >= 0) {
        /* FCGI_STDIN is read to its end although hello ignores it: FCGX_Finish_r
         * throws away unread input, so with FCGI_KEEP_CONN the next
         * FCGX_Accept_r would start mid-request and close the connection. */
        while (FCGX_GetStr(buf, sizeof buf, req.in) > 0)
            ;
        FCGX_PutS(msg, req.out);
        FCGX_Finish_r(&req);
    }
    return 0;
}
