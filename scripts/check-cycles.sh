#!/bin/sh
# check-cycles.sh -- fails when the object files given call each other in
# a cycle: file A uses a symbol that file B defines and B, directly or
# through others, uses one that A defines. Built from `nm` of each
# object (defined and undefined symbols), so it sees calls and data
# references whatever the headers say.
#
#   sh scripts/check-cycles.sh FILE.o...   prints the file graph; exit 1 on a cycle
#   sh scripts/check-cycles.sh --self-test checks that a cyclic pair is caught
#                                          and an acyclic pair is not
set -eu

if [ "${1:-}" = "--self-test" ]; then
    cc=${CC:-cc}
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    printf 'int b(int);\nint a(int x) { return x ? b(x - 1) : 0; }\n' >"$tmp/a.c"
    printf 'int a(int);\nint b(int x) { return x ? a(x - 1) : 1; }\n' >"$tmp/b.c"
    printf 'int c(int x) { return x + 1; }\n' >"$tmp/c.c"
    printf 'int c(int);\nint d(int x) { return c(x); }\n' >"$tmp/d.c"
    for f in a b c d; do $cc -c -o "$tmp/$f.o" "$tmp/$f.c"; done
    if sh "$0" "$tmp/a.o" "$tmp/b.o" >"$tmp/out" 2>&1; then
        echo "check-cycles self-test: the cycle a.o <-> b.o was not caught" >&2
        exit 1
    fi
    if ! sh "$0" "$tmp/c.o" "$tmp/d.o" >"$tmp/out" 2>&1; then
        echo "check-cycles self-test: the acyclic c.o <- d.o was refused:" >&2
        cat "$tmp/out" >&2
        exit 1
    fi
    echo "check-cycles self-test: ok"
    exit 0
fi

[ $# -gt 0 ] || { echo "usage: check-cycles.sh FILE.o... | --self-test" >&2; exit 2; }

for o in "$@"; do
    name=$(basename "$o" .o)
    # "U sym" for undefined, "<addr> T sym" for defined; keep global
    # definitions (upper-case type letters other than U).
    nm "$o" | awk -v f="$name" '
        $1 == "U" { print f, "U", $2; next }
        NF == 3 && $2 ~ /^[A-TV-Z]$/ { print f, "D", $3 }'
done | awk '
    $2 == "D" { def[$3] = $1; files[$1] = 1; next }
    $2 == "U" { use[++n] = $1 SUBSEP $3; files[$1] = 1 }
    END {
        for (i = 1; i <= n; i++) {
            split(use[i], p, SUBSEP)
            if ((p[2] in def) && def[p[2]] != p[1] && !((p[1], def[p[2]]) in edge)) {
                edge[p[1], def[p[2]]] = 1
                out[p[1]] = out[p[1]] " " def[p[2]]
            }
        }
        for (f in files) printf("%s ->%s\n", f, out[f]) | "sort"
        close("sort")
        # Depth-first search with colours: grey = on the current path.
        bad = 0
        for (f in files) if (!(f in colour)) bad += visit(f, "")
        exit (bad > 0 ? 1 : 0)
    }
    function visit(f, path,    k, m, t, found) {
        colour[f] = "grey"; found = 0
        m = split(out[f], t, " ")
        for (k = 1; k <= m; k++) {
            if (!(t[k] in colour)) {
                found += visit(t[k], path f " -> ")
            } else if (colour[t[k]] == "grey") {
                printf("cycle: %s%s -> %s\n", path, f, t[k]) > "/dev/stderr"
                found++
            }
        }
        colour[f] = "black"
        return found
    }'
