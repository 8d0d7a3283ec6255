#!/usr/bin/env perl
# hello.pl as a FastCGI responder (FastCGI spec §6.2), with the FCGI module
# (Debian: libfcgi-perl): the same print, once per request in the accept loop.
# FCGI::Request() with no arguments listens on fd 0 (FCGI_LISTENSOCK_FILENO,
# spec §2.2) and ties STDIN and STDOUT to the request. When fd 0 is not a
# listening socket, Accept() succeeds once with the CGI environment and the real
# STDIN and STDOUT, so the same file runs as plain CGI too.
use strict;
use warnings;
use FCGI;

my $request = FCGI::Request();
while ($request->Accept() >= 0) {
    # FCGI_STDIN is read to its end although hello ignores it: libfcgi throws
    # away unread input at the next Accept(), and with FCGI_KEEP_CONN closes the
    # connection. Only under FastCGI: a CGI server need not close the pipe.
    if ($request->IsFastCGI()) {
        1 while read(STDIN, my $unused, 65536);
    }
    print "Content-Type: text/plain\n\nhello\n";
}
