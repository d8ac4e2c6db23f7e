#!/bin/bash
# check.sh -- checks the man page sluice(1), the bash completion and their
# installation against the real command line, then proves that each check
# can fail by running it on broken copies.
#
#   tests/man/check.sh [SLUICE_BIN [BUILD]]   (default: build/sluice build)
#
#   - man/sluice.1 formats without a single warning (groff -man -ww, for
#     an ASCII and a UTF-8 terminal; `man --warnings` as well when man-db
#     is installed), and no formatted line is wider than 80 columns;
#   - every subcommand that `sluice --help` lists has its own section in
#     the page, every dlq verb and every option of the help text is in
#     it, and every SLUICE_* variable that framework/*.c reads with
#     getenv() is under ENVIRONMENT;
#   - completions/sluice.bash, sourced in `bash --norc`, completes the
#     subcommands the help lists (exactly those), the dlq verbs, each
#     subcommand's options of the help text, file names after -c, and
#     skips options given before the subcommand;
#   - `make install DESTDIR=...` puts both files in place (run with
#     BUILD, the build directory of SLUICE_BIN, so that nothing is built
#     again, and without the MAKEFLAGS of a make that runs this script).
# Tool: groff (Debian package groff-base); a missing tool fails the run.
# Exit 0 when every check passes and every broken copy fails, else 1.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
bin=${1:-${SLUICE_BIN:-build/sluice}}
case $bin in /*) ;; *) bin=$root/$bin ;; esac
build=${2:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

# say MESSAGE...: one line of the report.
say() { printf 'man-check: %s\n' "$*"; }

# fail MESSAGE...: records a failed check.
fail() {
    printf 'man-check: FAIL: %s\n' "$(printf '%s' "$*" | tr '\n' ' ')" >&2
    failed=1
}

# The help text every check compares with.
if ! "$bin" --help >"$tmp/help.txt" 2>&1; then
    fail "$bin --help did not exit 0"
    exit 1
fi

# subcommands HELP: the subcommands of a help text, one per line
# ("  sluice run  [-c FILE] ..." gives run).
subcommands() {
    sed -n 's/^[[:space:]]*sluice[[:space:]]\{1,\}\([a-z][a-z-]*\).*/\1/p' "$1" | sort -u
}

# usage_line HELP CMD: the usage line of CMD in a help text.
usage_line() {
    grep -E "^[[:space:]]*sluice[[:space:]]+$2([[:space:]]|$)" "$1" | head -n 1
}

# options TEXT: the options named in TEXT (-c and --long ones), one per line.
options() {
    printf '%s\n' "$1" | grep -oE '(^|[^[:alnum:]-])(-c|-h|--[a-z][a-z-]*)' |
        sed 's/^[^-]*//' | sort -u
}

# section TEXT NAME: the lines of section NAME of a formatted page, or of
# its subsection when NAME is indented ("   sluice dlq").
section() {
    awk -v name="$2" '
        index($0, name) == 1 { on = 1; print; next }
        on && /^[^ \t]/ { exit }
        on && name ~ /^ / && /^   [^ ]/ { exit }
        on { print }' "$1"
}

# render MANPAGE DEVICE OUT: formats MANPAGE for DEVICE into OUT; fails
# on any warning. Without -z, so that glyphs the device lacks are
# reported too.
render() {
    local page=$1 dev=$2 out=$3 err
    err=$(groff -man -ww -T"$dev" -P-cbou -rLL=80n "$page" 2>&1 >"$out")
    if [ -n "$err" ]; then
        fail "groff -man -ww -T$dev $page: $err"
        return 1
    fi
}

# check_man MANPAGE HELP SRCDIR: the page formats cleanly and documents
# every subcommand, dlq verb and option of HELP and every SLUICE_*
# variable that SRCDIR/*.c reads.
check_man() {
    local page=$1 help=$2 src=$3 ok=0 txt err cmd verb opt var cmds loc
    command -v groff >/dev/null 2>&1 || { fail "groff is not installed (Debian package groff-base)"; return 1; }
    txt=$(mktemp "$tmp/man.XXXXXX")
    render "$page" utf8 "$txt" || ok=1
    render "$page" ascii "$txt" || ok=1
    if command -v man >/dev/null 2>&1; then
        for loc in C C.UTF-8; do
            err=$(LC_ALL=$loc MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
            [ -z "$err" ] || { fail "LC_ALL=$loc man --warnings -l $page: $err"; ok=1; }
        done
    fi
    if awk 'length > 80 { print; bad = 1 } END { exit !bad }' "$txt" >"$tmp/wide"; then
        fail "$page: lines wider than 80 columns: $(cat "$tmp/wide")"
        ok=1
    fi
    cmds=$(subcommands "$help")
    if [ -z "$cmds" ]; then
        fail "no subcommand found in the help text"
        return 1
    fi
    for cmd in $cmds; do
        if ! grep -qE "^\.SS \"?sluice $cmd([ \"]|$)" "$page"; then
            fail "$page: no section .SS \"sluice $cmd ...\" for the subcommand $cmd"
            ok=1
        fi
        if ! section "$txt" SYNOPSIS | grep -qE "^[[:space:]]+sluice $cmd( |$)"; then
            fail "$page: sluice $cmd is not in the SYNOPSIS"
            ok=1
        fi
    done
    # The dlq verbs: the lower-case words of its usage line.
    for verb in $(usage_line "$help" dlq | sed -e 's/^[[:space:]]*sluice[[:space:]]*dlq//' \
                      -e 's/--[a-z-]*//g' | grep -oE '\b[a-z]+\b' | sort -u); do
        if ! section "$txt" "   sluice dlq" | grep -qE "^ {7}$verb( |$)"; then
            fail "$page: the dlq verb $verb has no entry under sluice dlq"
            ok=1
        fi
    done
    for opt in $(options "$(cat "$help")"); do
        if ! grep -qE -- "(^|[^[:alnum:]-])$opt([^[:alnum:]-]|$)" "$txt"; then
            fail "$page: the option $opt of the help text is not documented"
            ok=1
        fi
    done
    while read -r var; do
        if ! section "$txt" ENVIRONMENT | grep -qE "^ {7}$var\$"; then
            fail "$page: $var (read by $src) is not under ENVIRONMENT"
            ok=1
        fi
    done < <(grep -ohE 'getenv\("SLUICE_[A-Z_]+"\)' "$src"/*.c | sed 's/getenv("\(.*\)")/\1/' | sort -u)
    return $ok
}

# The harness run by `bash --norc`: sources the completion given as $1,
# then for each further argument, a command line up to the cursor, prints
# "<line>|<completions, sorted, space-separated>". COMP_WORDS is split as
# bash splits it: at blanks, and at ':' and '=' (COMP_WORDBREAKS), which
# become words of their own.
cat >"$tmp/harness.bash" <<'EOF'
# shellcheck disable=SC1090 # the file under test
source "$1" || exit 1
shift
spec=$(complete -p sluice 2>/dev/null)
case $spec in *"-F _sluice "*) ;; *) echo "not registered: $spec"; exit 1 ;; esac
for line in "$@"; do
    COMP_WORDS=()
    w=""
    for ((k = 0; k < ${#line}; k++)); do
        ch=${line:k:1}
        case $ch in
        " ") [ -n "$w" ] && COMP_WORDS+=("$w"); w="" ;;
        ":" | "=") [ -n "$w" ] && COMP_WORDS+=("$w"); COMP_WORDS+=("$ch"); w="" ;;
        *) w+=$ch ;;
        esac
    done
    COMP_WORDS+=("$w")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE=$line
    COMP_POINT=${#line}
    COMPREPLY=()
    _sluice sluice "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf '%s|%s\n' "$line" "$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//')"
done
EOF

# complete_lines COMPLETION LINE...: the harness's output for the lines,
# run in a directory holding the file my-config.json.
complete_lines() {
    local comp=$1
    shift
    case $comp in /*) ;; *) comp=$root/$comp ;; esac
    mkdir -p "$tmp/cwd" && : >"$tmp/cwd/my-config.json"
    (cd "$tmp/cwd" && bash --norc --noprofile "$tmp/harness.bash" "$comp" "$@")
}

# expect OUT LINE WANT MODE: checks the completions of LINE in the
# harness output OUT: MODE "is" (exactly WANT) or "has" (every word of
# WANT among them).
expect() {
    local out=$1 line=$2 want=$3 mode=$4 got w ok=0
    got=$(awk -v p="$line|" 'index($0, p) == 1 { print substr($0, length(p) + 1); exit }' "$out")
    if [ "$mode" = is ]; then
        [ "$got" = "$want" ] && return 0
    else
        for w in $want; do
            case " $got " in *" $w "*) ;; *) ok=1 ;; esac
        done
        [ $ok -eq 0 ] && return 0
    fi
    fail "completion of \"$line\": got \"$got\", expected $mode \"$want\""
    return 1
}

# check_completion COMPLETION HELP: the completion agrees with HELP.
check_completion() {
    local comp=$1 help=$2 ok=0 out cmd cmds opts
    local -a lines=("sluice d" "sluice " "sluice dlq " "sluice stats --" "sluice -c my-c"
                    "sluice --config " "sluice -c my-config.json --metrics 127.0.0.1:9121 d"
                    "sluice --metrics=127.0.0.1:0 --count 5 dlq r" "sluice health --metrics n"
                    "sluice stats --watch " "sluice dlq list orders " "sluice --v"
                    "sluice dlq replay -")
    cmds=$(subcommands "$help")
    for cmd in $cmds; do
        lines+=("sluice $cmd -")
    done
    out=$(mktemp "$tmp/comp.XXXXXX")
    if ! complete_lines "$comp" "${lines[@]}" >"$out" 2>"$out.err" || [ -s "$out.err" ]; then
        fail "completion $comp: $(cat "$out" "$out.err")"
        return 1
    fi
    expect "$out" "sluice d" "dlq" is || ok=1
    expect "$out" "sluice " "$(printf '%s\n' "$cmds" | tr '\n' ' ' | sed 's/ $//')" is || ok=1
    expect "$out" "sluice dlq " "list purge replay show" is || ok=1
    expect "$out" "sluice stats --" "--json --watch" has || ok=1
    expect "$out" "sluice -c my-c" "my-config.json" is || ok=1
    expect "$out" "sluice --config " "my-config.json" is || ok=1
    expect "$out" "sluice -c my-config.json --metrics 127.0.0.1:9121 d" "dlq" is || ok=1
    expect "$out" "sluice --metrics=127.0.0.1:0 --count 5 dlq r" "replay" is || ok=1
    expect "$out" "sluice health --metrics n" "none" is || ok=1
    expect "$out" "sluice stats --watch " "" is || ok=1
    expect "$out" "sluice dlq list orders " "" is || ok=1
    expect "$out" "sluice --v" "--version" is || ok=1
    # Each subcommand offers the options its usage line shows.
    for cmd in $cmds; do
        opts=$(options "$(usage_line "$help" "$cmd" | sed "s/^[[:space:]]*sluice[[:space:]]*$cmd//")")
        if [ "$cmd" = dlq ]; then
            # The verb decides (--all is replay's): ask about replay.
            expect "$out" "sluice dlq replay -" "$(printf '%s\n' "$opts" | tr '\n' ' ')" has || ok=1
        else
            expect "$out" "sluice $cmd -" "$(printf '%s\n' "$opts" | tr '\n' ' ')" has || ok=1
        fi
    done
    return $ok
}

# check_install MAKEFILE: `make install` with MAKEFILE puts the man page
# and the completion where man and bash-completion look for them.
check_install() {
    local mk=$1 dest man1 compdir
    dest=$(mktemp -d "$tmp/dest.XXXXXX")
    if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -C "$root" \
            -f "$mk" install BUILD="$build" DESTDIR="$dest" PREFIX=/usr/local >"$dest.log" 2>&1; then
        fail "make install DESTDIR=$dest: $(tail -n 5 "$dest.log")"
        return 1
    fi
    man1=$dest/usr/local/share/man/man1/sluice.1
    compdir=$dest/usr/local/share/bash-completion/completions
    if ! cmp -s "$man1" man/sluice.1; then
        fail "make install did not install man/sluice.1 as $man1"
        return 1
    fi
    if ! cmp -s "$compdir/sluice" completions/sluice.bash; then
        fail "make install did not install completions/sluice.bash as $compdir/sluice"
        return 1
    fi
}

# 1. The real files.
check_man man/sluice.1 "$tmp/help.txt" framework && say "ok: man/sluice.1 formats cleanly and documents $(subcommands "$tmp/help.txt" | tr '\n' ' ')"
check_completion completions/sluice.bash "$tmp/help.txt" && say "ok: completions/sluice.bash"
check_install Makefile && say "ok: make install DESTDIR=... installs both"

# 2. Each check refuses a broken copy. The failures are expected: their
#    messages go to a log, and only a check that passes is reported.
# refuse WHAT PATTERN COMMAND...: COMMAND must fail, and say PATTERN
# (an extended regular expression) in its messages: it failed for the
# reason the broken copy was made for.
refuse() {
    local what=$1 pattern=$2 saved=$failed log
    shift 2
    log=$(mktemp "$tmp/refused.XXXXXX")
    if "$@" 2>"$log"; then
        failed=$saved
        fail "the check passed a broken copy: $what"
    elif ! grep -qE -- "$pattern" "$log"; then
        failed=$saved
        fail "the check refused $what, but not with /$pattern/: $(cat "$log")"
    else
        failed=$saved
        say "ok: refused $what: $(grep -E -m 1 -- "$pattern" "$log" | sed 's/^man-check: FAIL: //' | cut -c 1-110)"
    fi
}
mkdir -p "$tmp/broken/src"
# A warning: an undefined macro.
{ cat man/sluice.1; echo '.XX undefined'; } >"$tmp/broken/warn.1"
refuse "a man page with an undefined macro" "macro .XX. not defined" check_man "$tmp/broken/warn.1" "$tmp/help.txt" framework
# A glyph a terminal lacks (reported only when the output is produced).
{ cat man/sluice.1; echo 'arrival rate \(*l'; } >"$tmp/broken/glyph.1"
refuse "a man page with a Greek letter" "special character .\*l." check_man "$tmp/broken/glyph.1" "$tmp/help.txt" framework
# An example line wider than a terminal.
{ cat man/sluice.1; echo '.nf'; printf 'sluice%090d\n' 0; echo '.fi'; } >"$tmp/broken/wide.1"
refuse "a man page with a line of 96 columns" "wider than 80 columns" check_man "$tmp/broken/wide.1" "$tmp/help.txt" framework
# A subcommand without its section.
sed '/^\.SS "sluice health"/,/^\.SH/{/^\.SH/!d}' man/sluice.1 >"$tmp/broken/nohealth.1"
refuse "a man page without the health section" "no section .* for the subcommand health" check_man "$tmp/broken/nohealth.1" "$tmp/help.txt" framework
# A subcommand added to the help but not documented.
{ cat "$tmp/help.txt"; echo "  sluice frobnicate STREAM"; } >"$tmp/broken/help-new-cmd.txt"
refuse "a help text with an undocumented subcommand" "subcommand frobnicate" check_man man/sluice.1 "$tmp/broken/help-new-cmd.txt" framework
# An option added to the help but not documented.
{ cat "$tmp/help.txt"; echo "  sluice stats   [--json] [--frobnicate N]"; } >"$tmp/broken/help-new-opt.txt"
refuse "a help text with an undocumented option" "option --frobnicate" check_man man/sluice.1 "$tmp/broken/help-new-opt.txt" framework
# A dlq verb added to the help but not documented.
sed 's/|purge /|purge|frob /' "$tmp/help.txt" >"$tmp/broken/help-new-verb.txt"
refuse "a help text with an undocumented dlq verb" "dlq verb frob " check_man man/sluice.1 "$tmp/broken/help-new-verb.txt" framework
# An environment variable read by the code but not documented.
{ cat framework/cli.c; echo 'const char *x(void) { return getenv("SLUICE_FROB"); }'; } >"$tmp/broken/src/cli.c"
refuse "code reading an undocumented SLUICE_FROB" "SLUICE_FROB .* ENVIRONMENT" check_man man/sluice.1 "$tmp/help.txt" "$tmp/broken/src"
# The completion without health, without --watch, without file names.
sed 's/ health"$/"/' completions/sluice.bash >"$tmp/broken/nohealth.bash"
refuse "a completion without health" "completion of .sluice .: got" check_completion "$tmp/broken/nohealth.bash" "$tmp/help.txt"
# shellcheck disable=SC2016 # $common is text of the completion file
sed 's/stats) opts="$common --json --watch"/stats) opts="$common --json"/' completions/sluice.bash >"$tmp/broken/nowatch.bash"
refuse "a completion without stats --watch" "sluice stats --.: got .*--watch" check_completion "$tmp/broken/nowatch.bash" "$tmp/help.txt"
sed 's/compgen -f --/compgen -W "" --/' completions/sluice.bash >"$tmp/broken/nofiles.bash"
refuse "a completion without file names after -c" "sluice -c my-c.: got" check_completion "$tmp/broken/nofiles.bash" "$tmp/help.txt"
sed 's/((i++)); continue ;;/continue ;;/' completions/sluice.bash >"$tmp/broken/novalues.bash"
refuse "a completion that takes option values for the subcommand" "9121 d.: got" check_completion "$tmp/broken/novalues.bash" "$tmp/help.txt"
# A help text with a subcommand the completion does not know.
refuse "a completion that lacks a new subcommand" "frobnicate" check_completion completions/sluice.bash "$tmp/broken/help-new-cmd.txt"
# make install without the man page line.
grep -v 'man/sluice\.1' Makefile >"$tmp/broken/Makefile"
refuse "a Makefile that does not install the man page" "did not install man/sluice.1" check_install "$tmp/broken/Makefile"

for f in "$tmp"/broken/*; do
    [ -f "$f" ] || continue
    cmp -s "$f" man/sluice.1 && fail "broken copy $f is the same as man/sluice.1"
    cmp -s "$f" completions/sluice.bash && fail "broken copy $f is the same as completions/sluice.bash"
    cmp -s "$f" Makefile && fail "broken copy $f is the same as the Makefile"
done

if [ "$failed" -ne 0 ]; then
    say "FAILED"
    exit 1
fi
say "all checks passed"
