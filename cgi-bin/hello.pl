#!/usr/bin/perl
# The smallest CGI document response (RFC 3875 §6.2.1) in Perl.
# Kept minimal for benchmarks.
print "Content-Type: text/plain\n\nhello\n";
