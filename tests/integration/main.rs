//! Portico's integration tests: one test binary, one module per part of the contract.
//!
//! Every test starts the real `portico` binary on 127.0.0.1:0 against real scripts
//! (sh, perl, python3, C) written into a fresh temporary directory, talks raw HTTP/1.x
//! to it, and kills it on drop. Nothing is shared between tests, so they run in parallel.
//!
//! Layout:
//! - `harness`: starting and stopping Portico, its log, fixture directories, processes.
//! - `http`: a raw HTTP/1.x client that sends bytes exactly as written.
//! - `scripts`: the small CGI scripts several modules share, and readers of what `ENV` prints.
//! - `meta_variables`: the request side of RFC 3875 §4.1: the request line, server and
//!   client, SCRIPT_NAME and PATH_INFO, CONTENT_LENGTH and CONTENT_TYPE, the body on stdin.
//! - `header_variables`: header fields as `HTTP_*` variables, and those never passed.
//! - `document_root`: DOCUMENT_ROOT and PATH_TRANSLATED, from the config, a flag or the
//!   current directory.
//! - `environment`: the rest of a script's environment (`[env]`, PATH, nothing leaked),
//!   argv, and interpreters.
//! - `responses`: the response side (document, Status, redirects, NPH, framing).
//! - `examples`: the repository's `cgi-bin/` examples (sh, Perl, Python, C) as documented.
//! - `languages`: inline C, Perl and Python scripts, and configured interpreters.
//! - `privileges`: `user` and `group`, the user Portico serves as once its sockets are bound.
//! - `rlimits`: the CPU time and address-space limits scripts start under.
//! - `streaming`: large bodies both ways without deadlock, buffering or memory growth.
//! - `limits`: body and header section sizes (413, 431).
//! - `script_failures`: scripts missing (404), not executable (403), crashing or writing
//!   a bad head (502).
//! - `deadlines`: the head, idle and total deadlines (504, cut bodies) and the kill grace.
//! - `concurrency`: the concurrency limit and its queue (503), and bursts leaving no zombie.
//! - `clients`: slow header senders, clients that vanish or stop reading.
//! - `shutdown`: SIGTERM and SIGINT: draining, the shutdown timeout, exit 0.
//! - `lingering`: closing without resetting the response (RFC 9112 §9.6), and its bounds.
//! - `script_mount`: a mount of one script (cgit, gitweb), the rest of the path PATH_INFO.
//! - `traversal`: path resolution and every way of trying to leave the mount.
//! - `config`: `portico check`, config files, and flags overriding them.
//! - `auth`: a mount's HTTP Basic authentication, REMOTE_USER and AUTH_TYPE.
//! - `access_log`: the Common/Combined Log Format file, and its reopening on SIGHUP.
//! - `logging`: the access line and script stderr in Portico's log.
//! - `bench`: `portico bench` end to end, in-process and by URL.
//! - `docs`: the commands of docs/evolution.md, run as written.
//! - `explain`: `portico explain`, one request as CGI, FastCGI and WSGI.
//! - `explain_page`: the same as a page (`[explain]`): who may use it, what it shows.
//! - `wsgi`: WSGI callables behind launched workers and as plain CGI, and a virtual
//!   environment's interpreter.
//! - `wsgi_conformance`: PEP 3333, checked by `wsgiref.validate` around an app.
//! - `django`: a real Django project, made at test time, under a `[[wsgi]]` mount.
//! - `fastcgi`: FastCGI mounts to an application Portico does not run: params, full-duplex
//!   body, stdout through the CGI head parser, stderr to the log.
//! - `persistent`: Perl and Python CGI scripts kept warm in launched runners, answering
//!   byte for byte as spawned per request, gitweb included.
//! - `persistent_safety`: state isolation between requests, and the fall back to plain CGI.
//! - `php`: php-fpm behind a `[[fastcgi]]` mount and php-cgi as a CGI interpreter.
//! - `launch`: FastCGI workers Portico launches and supervises, and the status page.
//! - `status_page`: the status page's scoreboard (scripts and FastCGI/WSGI requests
//!   running now), per-mount counts, rates and percentiles, and the page in Chromium.
//! - `metrics`: the Prometheus metrics, scraped after a known mix of requests.
//! - `pages`: the status page, the bench report and the explain page in headless
//!   Chromium (`chromium` runs it): no console message, the DOM's numbers, the layout.
//! - `fcgi_examples`: the repository's FastCGI hello examples (C, Python, Perl), launched
//!   and as plain CGI, and the default `conf/portico.toml`.
//! - `faults`: FastCGI apps that fail (closed kept connections, a full listen queue, a
//!   connection dropped before or inside the response, a stopped app) under bursts.
//! - `upstreams`: FastCGI upstreams Portico does not run: balancing, failover, kept
//!   connections, FCGI_GET_VALUES.
//! - `hosts`: pools across hosts, each a network namespace: upstreams on other hosts
//!   (balancing, one dying and coming back), and Portico instances behind nginx drained
//!   with SIGTERM.

mod access_log;
mod attacks;
mod auth;
mod authorizer;
mod behind_nginx;
mod bench;
mod chromium;
mod clients;
mod concurrency;
mod config;
mod deadlines;
mod django;
mod docs;
mod document_root;
mod environment;
mod examples;
mod explain;
mod explain_page;
mod fastcgi;
mod faults;
mod fcgi_examples;
mod harness;
mod header_variables;
mod hosts;
mod http;
mod http2;
mod languages;
mod launch;
mod limits;
mod lingering;
mod logging;
mod meta_variables;
mod metrics;
mod misbehaving;
mod pages;
mod persistent;
mod persistent_safety;
mod php;
mod privileges;
mod proxies;
mod response_splitting;
mod responses;
mod rlimits;
mod script_failures;
mod script_mount;
mod scripts;
mod sendfile;
mod shutdown;
mod smuggling;
mod status_page;
mod streaming;
mod suexec;
mod systemd;
mod tls;
mod traversal;
mod upstreams;
mod wsgi;
mod wsgi_conformance;
mod wsgi_threads;
