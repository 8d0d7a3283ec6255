#!/bin/sh
# A local redirect response (RFC 3875 §6.2.2): a Location path and no
# body; the server serves /cgi-bin/hello.sh instead, without telling the client.
printf 'Location: /cgi-bin/hello.sh\n\n'
