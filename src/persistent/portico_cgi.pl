# Portico's persistent CGI runner for Perl: unmodified CGI scripts kept warm, as
# Apache's ModPerl::Registry keeps them.
#
# Portico launches it for a [[cgi]] mount's `persistent.perl` scripts as
#     perl portico_cgi.pl
# with a listening socket as fd 0 (FCGI_LISTENSOCK_FILENO, FastCGI spec 2.2), and sends
# each request as FastCGI (FCGI, Debian's libfcgi-perl) with SCRIPT_FILENAME naming the
# script and the same meta-variables plain CGI would put in its environment.
#
# The script is compiled into a subroutine once per worker, and again when its file changes,
# as CGI::Compile (Debian's libcgi-compile-perl) compiles it, with its `exit`. Each request
# runs it as a CGI process would run: %ENV the request's meta-variables over the worker's
# own environment (the scripts' base environment, PATH and [env]), STDIN the body, STDOUT
# the response, STDERR Portico's log, its directory as the working directory, $0 its path,
# no arguments. `exit` ends the request, not the worker. CGI.pm's globals are reset before
# each run (CGI::initialize_globals), except what the script's own `use CGI qw(-pragma)`
# set.
#
# A script that does not compile here is declined: a head with the Portico-Declined
# field and nothing else, and Portico runs it as plain CGI instead.

use strict;
use warnings;

# First: CGI::Compile replaces CORE::GLOBAL::exit, and only code compiled after that
# sees the replacement, which ends the request instead of the worker.
use CGI::Compile;
use Cwd ();
use FCGI;
use File::Basename ();
use POSIX ();
use Symbol ();
use Time::HiRes ();

# Loaded once for every script that uses it: most of a CGI.pm script's start-up.
eval { require CGI; 1 };

# The environment Portico started the worker with is the one every CGI script starts
# from; a request's meta-variables go over it, as they do for a process of its own.
my %BASE_ENV = %ENV;
my @BASE_NAMES = keys %BASE_ENV;

# fd 0 is the listening socket. A script that reads fd 0 itself, or asks FCGI whether it
# runs under FastCGI, must not find it there: it moves to another descriptor, and fd 0
# reads nothing, like a CGI script's stdin once the body has been read.
my $listen = POSIX::dup(0) // die "portico_cgi.pl: dup: $!\n";
open my $null, '<', '/dev/null' or die "portico_cgi.pl: /dev/null: $!\n";
POSIX::dup2(fileno $null, 0) // die "portico_cgi.pl: dup2: $!\n";
close $null;

# The compiled scripts by path: { stamp, run, package, pragmas }.
my %scripts;

# CGI.pm's settings that the script being run made at compile time (see cgi_pragmas).
our $PRAGMAS = {};

# Whether CGI::initialize_globals is wrapped to apply them (keep_pragmas).
my $keeping;

# The runner's own signal handlers, which every script starts with; their names; and all
# of them as one string, to compare with in one step (reading %SIG is a lookup by name
# for each signal, several microseconds for all of them).
my (%BASE_SIG, @SIGNALS, $BASE_HANDLERS);

sub main {
    my %params;
    my $request = FCGI::Request(\*STDIN, \*RESPONSE, \*STDERR, \%params, $listen,
        FCGI::FAIL_ACCEPT_ON_INTR());
    # Portico drains a worker before it sends SIGTERM: the loop ends, END blocks run.
    $SIG{TERM} = $SIG{INT} = sub { $request->LastCall() };
    # keys %SIG lists the signals, not the hooks __WARN__ and __DIE__ (perlvar).
    @SIGNALS = (keys(%SIG), '__WARN__', '__DIE__');
    @BASE_SIG{@SIGNALS} = @SIG{@SIGNALS};
    $BASE_HANDLERS = handlers();
    while ($request->Accept() >= 0) {
        # libfcgi's own addition to the params; no CGI process has it.
        delete $params{FCGI_ROLE};
        serve($params{SCRIPT_FILENAME} // '', \%params);
        $request->Finish();
    }
}

sub serve {
    my ($path, $params) = @_;
    my $response = tied *RESPONSE;
    # Set before the script compiles: its BEGIN blocks see the request, as under plain CGI.
    environment($params);
    local $0 = $path;
    my $printed = '';
    my $script = eval { compiled($path, \$printed) };
    if (!$script) {
        $response->PRINT(declined($@));
        return;
    }
    local $PRAGMAS = $script->{pragmas};
    tie *STDOUT, 'Portico::Output', $response;
    print STDOUT $printed if length $printed;
    my $ok = eval { at_home($script->{dir}); $script->{run}->(); 1 };
    my $error = $@;
    untie *STDOUT;
    # Signal handlers the script set are its own, as they would be in its own process.
    if (handlers() ne $BASE_HANDLERS) {
        for my $name (@SIGNALS) {
            no warnings 'uninitialized';
            $SIG{$name} = $BASE_SIG{$name} if $SIG{$name} ne $BASE_SIG{$name};
        }
    }
    # What perl itself prints for a die nobody caught; the request ends as the process
    # would, with what the script wrote so far.
    print STDERR $error if !$ok;
}

# Every signal's handler, in @SIGNALS's order, as one string.
sub handlers {
    no warnings 'uninitialized';
    return join "\0", @SIG{@SIGNALS};
}

# %ENV made the request's meta-variables over the base environment. Only what differs from
# the last request is set or deleted: each change is a setenv(3) or unsetenv(3) for the
# processes a script starts, and replacing all of %ENV cost more than a small script's run.
sub environment {
    my ($params) = @_;
    for my $name (keys %ENV) {
        delete $ENV{$name} if !exists $params->{$name} && !exists $BASE_ENV{$name};
    }
    # "\0" stands for unset: no value of the environment holds one.
    for my $name (keys %$params) {
        my $value = $params->{$name};
        $ENV{$name} = $value if ($ENV{$name} // "\0") ne $value;
    }
    for my $name (@BASE_NAMES) {
        next if exists $params->{$name};
        my $value = $BASE_ENV{$name};
        $ENV{$name} = $value if ($ENV{$name} // "\0") ne $value;
    }
}

# The script at $path compiled, from the cache while its file is unchanged. What it prints
# while it compiles (a BEGIN block) is its output, but only once it is known to compile (a
# declined script must have written nothing): it is kept in $$printed meanwhile.
sub compiled {
    my ($path, $printed) = @_;
    my @stat = Time::HiRes::stat($path) or die "cannot read $path: $!\n";
    my $stamp = join ':', @stat[1, 7, 9];    # inode, size, modification time
    my $cached = $scripts{$path};
    return $cached if $cached && $cached->{stamp} eq $stamp;
    # A new version gets a clean package: the old one's subs and variables go.
    Symbol::delete_package($cached->{package}) if $cached;
    delete $scripts{$path};
    my $package = 'Portico::Script::' . ($path =~ s/(\W)/sprintf '_%02x', ord $1/ger);
    my $dir = File::Basename::dirname(Cwd::abs_path($path));
    at_home($dir);
    # Each script compiles against CGI.pm's defaults, as it would in a process of its own.
    {
        local $PRAGMAS = {};
        CGI::initialize_globals() if defined &CGI::initialize_globals;
    }
    my $run = do {
        local *STDOUT;
        open STDOUT, '>', $printed or die "portico_cgi.pl: $!\n";
        Portico::Compile->new(return_exit_val => 1)->compile($path, $package);
    };
    keep_pragmas();
    return $scripts{$path} = {
        stamp   => $stamp,
        run     => $run,
        dir     => $dir,
        package => $package,
        pragmas => cgi_pragmas(),
    };
}

# The script's directory as the working directory, as a CGI process has it (RFC 3875
# §7.2).
sub at_home {
    my ($dir) = @_;
    chdir $dir or die "cannot change to $dir: $!\n";
}

# The head by which the runner declines a script (Portico-Declined), the reason in one
# line that is a valid field value.
sub declined {
    my ($error) = @_;
    my ($reason) = "$error" =~ /^([^\n]*)/;
    $reason =~ s/[^\x20-\x7e]/?/g;
    $reason = substr($reason, 0, 300);
    $reason = 'compile failed' if $reason !~ /\S/;
    return "Status: 502 Bad Gateway\r\nPortico-Declined: $reason\r\n\r\n";
}

# CGI.pm's scalar settings: name => value, for those holding a plain value.
sub cgi_settings {
    no strict 'refs';
    my %settings;
    for my $name (keys %CGI::) {
        next unless $name =~ /^[A-Za-z_]\w*$/;
        my $value = ${"CGI::$name"};
        $settings{$name} = $value if !ref $value;
    }
    return \%settings;
}

# What a script's `use CGI qw(-nosticky -utf8 ...)` changed at compile time. Under plain
# CGI the import runs in every process; here it ran once, and CGI::Compile calls
# CGI::initialize_globals before every run, which would put the settings back.
sub cgi_pragmas {
    return {} unless defined &CGI::initialize_globals;
    my $compiled = cgi_settings();
    {
        local $PRAGMAS = {};
        CGI::initialize_globals();
    }
    my $defaults = cgi_settings();
    my %pragmas;
    for my $name (keys %$compiled) {
        my ($was, $is) = ($defaults->{$name}, $compiled->{$name});
        next if !defined $was && !defined $is;
        next if defined $was && defined $is && $was eq $is;
        $pragmas{$name} = $is;
    }
    return \%pragmas;
}

# CGI::initialize_globals, then the pragmas of the script being run.
sub keep_pragmas {
    return if $keeping || !defined &CGI::initialize_globals;
    $keeping = 1;
    my $initialize = \&CGI::initialize_globals;
    no strict 'refs';
    no warnings 'redefine';
    *CGI::initialize_globals = sub {
        $initialize->(@_);
        ${"CGI::$_"} = $PRAGMAS->{$_} for keys %$PRAGMAS;
    };
}

main();

# CGI::Compile's compile with a wrapper of the runner's own. CGI::Compile's costs several
# times a small script's run per request: it sets and restores every signal's handler
# (about 400 system calls), changes directory with File::pushd (which resolves both paths),
# makes two closures and formats the exit status, which no one reads here. This one sets
# only what a CGI process would start with; serve() restores the signal handlers a script
# changed, and the runner's working directory is left as the script left it (nothing of
# the runner's depends on it). Loading the text (_read_source, _eval) and `exit`
# (CORE::GLOBAL::exit dying with ["EXIT\n", status] unless USE_REAL_EXIT) stay
# CGI::Compile's.
package Portico::Compile;

# At compile time: statements after main() run only once the worker is ending.
use parent -norequire, 'CGI::Compile';

# The text after each compiled script's __DATA__ or __END__, by package.
our %DATA;

sub compile {
    my ($self, $path, $package) = @_;
    my $code = $self->_read_source($path);
    my $warnings = $code =~ /^#!.*\s-w\b/ ? 1 : 0;
    # perldata: what follows __END__ in a program, or __DATA__, is read through DATA.
    my $data = $code =~ s/^__(?:END|DATA)__\r?\n(.*)//ms ? $1 : undef;
    my $file = $path =~ /"/ ? $path : qq{"$path"};
    my $run = join '',
        "package $package;",
        'sub {',
        'local $CGI::Compile::USE_REAL_EXIT = 0;',
        'CGI::initialize_globals() if defined &CGI::initialize_globals;',
        defined $data
            ? qq{local *DATA; open DATA, "<", \\\$Portico::Compile::DATA{"$package"};}
            : '',
        "local \$^W = $warnings;",
        'local @ARGV;',
        'eval {',
        "\n#line 1 $file\n",
        $code,
        "\n};",
        'die $@ if $@ && !(ref $@ eq "ARRAY" && ($@->[0] // "") eq "EXIT\n");',
        '};';
    $DATA{$package} = $data;
    my $sub = do {
        local $CGI::Compile::USE_REAL_EXIT = 0;
        $self->_eval($run);
    };
    die "Could not compile $path: $@" if $@;
    return $sub;
}

# STDOUT while a script runs. FCGI's own handle takes bytes and ignores binmode; this one
# encodes what is printed through the layers the script asked for, as a file handle would,
# and takes print, printf, say, syswrite and binmode.
package Portico::Output;

use Encode ();

sub TIEHANDLE {
    my ($class, $stream) = @_;
    return bless { stream => $stream, encoding => undef }, $class;
}

sub PRINT {
    my $self = shift;
    my $text = join defined $, ? $, : '', map { defined ? $_ : '' } @_;
    $text .= $\ if defined $\;
    return $self->put($text);
}

sub PRINTF {
    my $self = shift;
    my $format = shift;
    return $self->put(sprintf $format, @_);
}

# syswrite bypasses the layers: perl refuses it on an encoding handle, and refuses a
# character above 255 (perlfunc syswrite).
sub WRITE {
    my ($self, $buffer, $length, $offset) = @_;
    my (undef, $file, $line) = caller;
    die "syswrite() isn't allowed on :utf8 handles at $file line $line.\n"
        if defined $self->{encoding};
    $offset //= 0;
    $length //= length($buffer) - $offset;
    my $part = substr $buffer, $offset, $length;
    die "Wide character in syswrite at $file line $line.\n" if !utf8::downgrade($part, 1);
    return undef if $self->{closed};
    $self->{stream}->PRINT($part) or return undef;
    return length $part;
}

# perlfunc binmode: no layer is :raw; layers apply left to right.
sub BINMODE {
    my ($self, $layers) = @_;
    $layers //= ':raw';
    for my $layer ($layers =~ /:?([^:\s]+(?:\([^)]*\))?)/g) {
        if ($layer eq 'raw' || $layer eq 'bytes' || $layer eq 'pop') {
            $self->{encoding} = undef;
        } elsif ($layer eq 'utf8') {
            $self->{encoding} = 'utf8';
        } elsif ($layer =~ /^encoding\((.+)\)$/) {
            my $encoding = Encode::find_encoding($1) or return 0;
            $self->{encoding} = $encoding;
        }
    }
    return 1;
}

sub FILENO { return undef }

# As on a pipe: what is printed after close goes nowhere.
sub CLOSE {
    my ($self) = @_;
    $self->{closed} = 1;
    return 1;
}

sub put {
    my ($self, $text) = @_;
    return 0 if $self->{closed};
    my $encoding = $self->{encoding};
    if (!defined $encoding) {
        # What perl does with a character above 255 on a handle without an encoding layer.
        if (!utf8::downgrade($text, 1)) {
            my (undef, $file, $line) = caller 1;
            warn "Wide character in print at $file line $line.\n";
            utf8::encode($text);
        }
    } elsif (!ref $encoding) {
        utf8::encode($text);
    } else {
        $text = $encoding->encode($text);
    }
    return $self->{stream}->PRINT($text);
}
