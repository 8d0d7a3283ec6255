#!/usr/bin/env bash
# Persistent CGI against its model, Apache's mod_perl with ModPerl::Registry: the same Perl
# CGI scripts (a copy of cgi-bin, and gitweb when Debian's gitweb is installed) spawned per
# request by Portico (/cgi-bin), kept warm by Portico (/warm, `persistent`, 2 workers) and
# kept warm by mod_perl (Apache on another loopback port), loaded by the same wrk command
# in alternating rounds; requests/s, p99 and each server's own CPU time per request.
#
#   scripts/bench/mod-perl.sh [-c CONNS] [-d SECONDS] [-r ROUNDS] [-m event|prefork]
#
# The same number of Perl interpreters on each side, 2, as Portico runs 2 workers:
#   event    (default) mpm_event, one child of 2 threads, each with its interpreter
#            (PerlInterpStart/Max 2); the event MPM's listener keeps idle keep-alive
#            connections off the threads, as Portico's own front keeps them off its workers
#   prefork  mpm_prefork, 2 children, KeepAlive Off: a prefork child is held by its
#            connection for as long as it stays open, so with keep-alive and more
#            connections than children the others would wait for the keep-alive timeout
# Both preload ModPerl::Registry and CGI.pm, as Portico's runner preloads CGI.pm. Apache
# runs in the foreground with a config of its own in a temporary directory (no system file
# is read or changed), logging errors only, as Portico runs with --log-level warn.
#
# CPU is user + system time from /proc of the server and every process under it (Apache's
# children; Portico's runners, and the scripts it spawned and reaped), over wrk's request
# count. Apache 2 and mod_perl are installed with apt-get when missing. Needs wrk, git, and
# a release build (cargo build --release).
set -euo pipefail

conns=8 seconds=5 rounds=3 mpm=event
while getopts c:d:r:m: opt; do
    case $opt in
    c) conns=$OPTARG ;;
    d) seconds=$OPTARG ;;
    r) rounds=$OPTARG ;;
    m) mpm=$OPTARG ;;
    *) sed -n '2,24p' "$0" >&2; exit 2 ;;
    esac
done
[[ $mpm == event || $mpm == prefork ]] || { echo "-m is event or prefork" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
portico=$repo/target/release/portico
[[ -x $portico ]] || { echo "build it first: cargo build --release" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (Debian: apt-get install wrk)" >&2; exit 2; }

as_root() {
    if [[ $(id -u) != 0 ]] && command -v sudo >/dev/null; then
        sudo "$@"
    else
        "$@"
    fi
}

apache2=/usr/sbin/apache2 modules=/usr/lib/apache2/modules
if [[ ! -x $apache2 || ! -e $modules/mod_perl.so ]]; then
    echo "installing: apache2 libapache2-mod-perl2" >&2
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends apache2 libapache2-mod-perl2
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cp -r "$repo/cgi-bin" "$work/cgi-bin"

gitweb=/usr/share/gitweb/gitweb.cgi
scripts=(hello.pl form.pl)
if [[ -e $gitweb ]]; then
    export GIT_AUTHOR_DATE=2020-01-02T03:04:05Z GIT_COMMITTER_DATE=2020-01-02T03:04:05Z
    git init -q "$work/repo" && echo hello >"$work/repo/README"
    git -C "$work/repo" add README
    git -C "$work/repo" -c user.name=Bench -c user.email=bench@example.org commit -qm one
    git clone -q --bare "$work/repo" "$work/git/demo.git"
    echo "\$projectroot = \"$work/git\";" >"$work/gitweb.conf"
    scripts+=(gitweb)
fi
# Apache's children run as www-data when it starts as root: they read the copies too.
chmod -R a+rX "$work"

# Portico as persistent.sh starts it.
{
    echo 'listen = "127.0.0.1:0"'
    if [[ -e $gitweb ]]; then
        printf '[env]\nset = { GITWEB_CONFIG = "%s" }\n' "$work/gitweb.conf"
        printf '[[cgi]]\nmount = "/gitweb"\nscript = "%s"\n' "$gitweb"
        printf '[[cgi]]\nmount = "/gitweb-warm"\nscript = "%s"\n' "$gitweb"
        echo 'persistent = { perl = ["gitweb.cgi"], workers = 2 }'
    fi
    printf '[[cgi]]\nmount = "/cgi-bin"\ndir = "cgi-bin"\n'
    printf '[[cgi]]\nmount = "/warm"\ndir = "cgi-bin"\n'
    echo 'persistent = { perl = ["*.pl"], python = ["*.py"], workers = 2 }'
} >"$work/portico.toml"
"$portico" serve --config "$work/portico.toml" --log-level warn 2>"$work/portico.log" &
portico_pid=$!
pids+=("$portico_pid")

# Apache on a free loopback port of its own.
port=$(perl -MIO::Socket::INET -e \
    'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0")->sockport')
{
    echo "ServerRoot $work"
    echo "ServerName 127.0.0.1"
    echo "Listen 127.0.0.1:$port"
    echo "PidFile $work/apache.pid"
    echo "DefaultRuntimeDir $work"
    echo "ErrorLog $work/apache-error.log"
    echo "LogLevel warn"
    if [[ $(id -u) == 0 ]]; then echo "User www-data"; echo "Group www-data"; fi
    echo "LoadModule mpm_${mpm}_module $modules/mod_mpm_$mpm.so"
    for module in authz_core alias env perl; do
        echo "LoadModule ${module}_module $modules/mod_$module.so"
    done
    if [[ $mpm == event ]]; then
        cat <<'EOF'
StartServers 1
ServerLimit 1
ThreadsPerChild 2
ThreadLimit 2
MaxRequestWorkers 2
MinSpareThreads 1
MaxSpareThreads 2
MaxConnectionsPerChild 0
PerlInterpStart 2
PerlInterpMax 2
PerlInterpMinSpare 2
PerlInterpMaxSpare 2
KeepAlive On
MaxKeepAliveRequests 0
EOF
    else
        cat <<'EOF'
StartServers 2
ServerLimit 2
MinSpareServers 2
MaxSpareServers 2
MaxRequestWorkers 2
MaxConnectionsPerChild 0
KeepAlive Off
EOF
    fi
    cat <<EOF
PerlModule ModPerl::Registry
PerlModule CGI
Alias /perl/ $work/cgi-bin/
<Directory $work/cgi-bin>
    SetHandler perl-script
    PerlResponseHandler ModPerl::Registry
    PerlOptions +ParseHeaders
    Options +ExecCGI
    Require all granted
</Directory>
EOF
    if [[ -e $gitweb ]]; then
        cat <<EOF
PerlSetEnv GITWEB_CONFIG $work/gitweb.conf
Alias /gitweb-perl $gitweb
<Directory $(dirname "$gitweb")>
    SetHandler perl-script
    PerlResponseHandler ModPerl::Registry
    PerlOptions +ParseHeaders
    Options +ExecCGI
    Require all granted
</Directory>
EOF
    fi
} >"$work/apache.conf"
"$apache2" -f "$work/apache.conf" -DFOREGROUND &
apache_pid=$!
pids+=("$apache_pid")

for _ in $(seq 50); do
    url=$(sed -n 's/^listening on //p' "$work/portico.log")
    [[ -n $url ]] && break
    sleep 0.1
done
[[ -n $url ]] || { cat "$work/portico.log" >&2; exit 1; }
apache=http://127.0.0.1:$port
for _ in $(seq 50); do
    curl -fsS -o /dev/null "$apache/perl/hello.pl" 2>/dev/null && break
    sleep 0.1
done

# server name, URL: the plain, warm and mod_perl URLs of one script, in round order.
targets_of() {
    case $1 in
    gitweb) echo "plain $url/gitweb/ warm $url/gitweb-warm/ mod_perl $apache/gitweb-perl" ;;
    *) echo "plain $url/cgi-bin/$1 warm $url/warm/$1 mod_perl $apache/perl/$1" ;;
    esac
}
# Every URL a few times, so that each interpreter has compiled each script before the clock
# starts (and answers it: curl -f fails on an error status).
for script in "${scripts[@]}"; do
    read -r -a pairs <<<"$(targets_of "$script")"
    for _ in 1 2 3 4; do
        for ((i = 1; i < ${#pairs[@]}; i += 2)); do curl -fsS -o /dev/null "${pairs[i]}"; done
    done
done

ticks=$(getconf CLK_TCK)
# utime + stime of a server and every living process under it, and of the children it
# has reaped (cutime + cstime: Portico's plain CGI scripts).
# A process that ends meanwhile (a plain CGI script) counts with its parent's reaped.
cpu_ticks() {
    local total pid
    total=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat" 2>/dev/null) || total=0
    for pid in $(pgrep -P "$1" || true); do
        total=$((total + $(cpu_ticks "$pid")))
    done
    echo "$total"
}

echo "$(date -u '+%F %H:%M') UTC, nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)," \
    "mpm $mpm, $conns connections, ${seconds}s rounds"
printf '%-10s %-9s %5s %10s %10s %12s\n' script server round 'req/s' 'p99' 'cpu µs/req'
for ((round = 1; round <= rounds; round++)); do
    for script in "${scripts[@]}"; do
        read -r -a pairs <<<"$(targets_of "$script")"
        for ((i = 0; i < ${#pairs[@]}; i += 2)); do
            server=${pairs[i]} target=${pairs[i + 1]}
            pid=$portico_pid
            [[ $server == mod_perl ]] && pid=$apache_pid
            before=$(cpu_ticks "$pid")
            out=$(wrk -t1 -c"$conns" -d"${seconds}s" --latency "$target")
            after=$(cpu_ticks "$pid")
            awk -v s="$script" -v v="$server" -v r="$round" -v t=$((after - before)) \
                -v hz="$ticks" '
                /requests in/ { n = $1 } /Requests\/sec/ { rps = $2 } $1 == "99%" { p99 = $2 }
                /Non-2xx/ { bad = $0 }
                END { printf "%-10s %-9s %5s %10s %10s %12.1f %s\n", s, v, r, rps, p99,
                      n ? t / hz * 1e6 / n : 0, bad }' <<<"$out"
        done
    done
done
