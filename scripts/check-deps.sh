#!/usr/bin/env bash
# scripts/check-deps.sh - deps/debian.txt must name the Debian package of everything the
# C code builds against, or a fresh machine cannot build spool (`make test` installs
# that list and nothing else). `make test` and `make sanitize` run this before building;
# it takes about a second.
#
# Checked, each against `dpkg -S` of the file this machine would use:
#   - every system header the project's .c and .h files include with #include <...>
#     (looked up in the compiler's search path plus the pkg-config -I directories);
#   - every pkg-config module the makefiles name ($(call pc_libs,...), pc_cflags, and
#     the *_PKGS lists those calls use): the package that ships its .pc file;
#   - every library the makefiles link literally (-lhpdf, -lcsv, -lz, -lm, ...): the
#     package that ships the lib<name>.so the linker finds.
# The package must be listed in deps/debian.txt. Packages build-essential brings on
# every Debian build machine count as listed: libc6-dev and linux-libc-dev (the C
# library, libm, the kernel headers) and gcc's own (libgcc-N-dev, gcc-N: stddef.h,
# stdatomic.h, ...). A package that is only there because a listed one depends on it
# does not count: depend on what you use, not on what it happens to pull in.
#
# CHECK_DEPS_VERBOSE=1 prints each header and library with the package it comes from.
# Exit status 0 when all is covered; 1 with one line per gap naming the header or
# library, where it is used and the package to add.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 2
list=deps/debian.txt
CC=${CC:-cc}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
me=check-deps

for tool in dpkg "$CC" "$PKG_CONFIG"; do
    if ! command -v "$tool" >/dev/null; then
        echo "$me: $tool is missing: run 'make deps' first" >&2
        exit 2
    fi
done

# The packages deps/debian.txt lists, and those build-essential stands for.
declare -A listed=()
# (A line is a package, optionally followed by "[command NAME]": scripts/deps.sh.)
while read -r p _; do [ -z "$p" ] || listed[$p]=1; done < <(sed -e 's/#.*//' "$list")
implied() {
    case $1 in
        libc6-dev | linux-libc-dev | libgcc-*-dev | gcc-[0-9]* | cpp-[0-9]*) return 0 ;;
    esac
    return 1
}

# The project's sources and makefiles (not build/, bin/, var/ or a fuzz corpus).
mapfile -d '' srcs < <(find . \( -path ./build -o -path ./bin -o -path ./var -o -path ./.git \
                                 -o -path '*/corpus' \) -prune -o -type f \( -name '*.c' -o -name '*.h' \) -print0)
mapfile -d '' mks < <(find . \( -path ./build -o -path ./bin -o -path ./var -o -path ./.git \) -prune \
                             -o -type f \( -name '*.mk' -o -name Makefile \) -print0)

# ---- what the makefiles name --------------------------------------------------------------
# Makefile text without comments, one "file<TAB>line" per line.
mk_text=$(for f in "${mks[@]}"; do sed -e 's/#.*//' "$f" | sed -e "s|^|${f#./}	|"; done)

# Words of a variable's assignments (VAR := ..., VAR = ..., VAR ?= ..., VAR += ...).
var_words() {
    printf '%s\n' "$mk_text" | sed -nE "s/^[^\t]*\t[[:space:]]*$1[[:space:]]*[:+?]?=(.*)/\1/p"
}
# Expand $(VAR) references among words (three levels deep is plenty).
expand() {
    local w depth=${2:-0}
    for w in $1; do
        case $w in
            '$('*')') [ "$depth" -lt 3 ] && expand "$(var_words "${w:2:${#w}-3}")" $((depth + 1)) ;;
            '$'*) ;;
            *) printf '%s\n' "$w" ;;
        esac
    done
}

declare -A pc_where=() lib_where=()
while IFS=$'\t' read -r file args; do
    for m in $(expand "$args"); do
        [ -n "${pc_where[$m]:-}" ] || pc_where[$m]=$file
    done
done < <(printf '%s\n' "$mk_text" | awk -F'\t' '{
             line = $2
             while (match(line, /pc_(libs|cflags),([^$)]|[$][(][A-Za-z0-9_]+[)])*/)) {
                 args = substr(line, RSTART, RLENGTH)
                 sub(/^pc_[a-z]+,/, "", args)
                 print $1 "\t" args
                 line = substr(line, RSTART + RLENGTH)
             }
         }')
while IFS=$'\t' read -r file lib; do
    [ -n "${lib_where[$lib]:-}" ] || lib_where[$lib]=$file
done < <(printf '%s\n' "$mk_text" | awk -F'\t' '{
             n = split($2, w, /[ \t]+/)
             for (i = 1; i <= n; i++)
                 if (w[i] ~ /^-l[A-Za-z0-9_]+$/)
                     print $1 "\t" substr(w[i], 3)
         }')

# ---- the file behind each of them --------------------------------------------------------
problems=()
declare -A owner_of=()   # path -> "why" (what it stands for, for the message)

for m in "${!pc_where[@]}"; do
    pc=$("$PKG_CONFIG" --path "$m" 2>/dev/null)
    if [ -z "$pc" ]; then
        problems+=("pkg-config module '$m' (${pc_where[$m]}) is not installed: add the Debian package that ships $m.pc (apt-file search /$m.pc)")
        continue
    fi
    owner_of[$pc]="pkg-config module '$m' (${pc_where[$m]})"
done

for lib in "${!lib_where[@]}"; do
    so=$("$CC" -print-file-name="lib$lib.so")
    if [ "$so" = "lib$lib.so" ]; then
        problems+=("library -l$lib (${lib_where[$lib]}) is not installed: add the Debian package that ships lib$lib.so (apt-file search /lib$lib.so)")
        continue
    fi
    owner_of[$(realpath -s "$so")]="library -l$lib (${lib_where[$lib]})"
done

# Include directories: the compiler's, then pkg-config's -I for the modules used.
mapfile -t incdirs < <("$CC" -E -Wp,-v -x c /dev/null 2>&1 | sed -n 's/^ \(\/.*\)/\1/p')
for m in "${!pc_where[@]}"; do
    for f in $("$PKG_CONFIG" --cflags-only-I "$m" 2>/dev/null); do incdirs+=("${f#-I}"); done
done

declare -A hdr_where=()
while IFS=: read -r file h; do
    [ -n "${hdr_where[$h]:-}" ] || hdr_where[$h]=${file#./}
done < <(grep -HoE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<[^>]+>' "${srcs[@]}" |
             sed -E 's/^([^:]*):.*<([^>]+)>.*/\1:\2/')
for h in "${!hdr_where[@]}"; do
    # The project's own headers, included with <> through -Icommon/include and the like.
    if [ -f "common/include/$h" ] || [ -f "common/$h" ]; then continue; fi
    path=""
    for d in "${incdirs[@]}"; do
        if [ -f "$d/$h" ]; then path=$(realpath -s "$d/$h"); break; fi
    done
    if [ -z "$path" ]; then
        problems+=("header <$h> (${hdr_where[$h]}) is not installed: add the Debian package that ships it (apt-file search /$h)")
        continue
    fi
    owner_of[$path]="header <$h> (${hdr_where[$h]})"
done

# ---- who owns each file: one dpkg -S for all, each path also in its merged-/usr spelling --
declare -A pkg_of=()
queries=()
for p in "${!owner_of[@]}"; do
    queries+=("$p")
    case $p in
        /usr/lib/*) queries+=("${p#/usr}") ;;
        /lib/*) queries+=("/usr$p") ;;
    esac
    r=$(realpath "$p")
    [ "$r" = "$p" ] || queries+=("$r")
done
if [ ${#queries[@]} -gt 0 ]; then
    while IFS= read -r line; do
        case $line in diversion* | "") continue ;; esac
        path=${line##*: }
        pkgs=${line%: *}
        pkg_of[$path]=$pkgs
    done < <(dpkg -S "${queries[@]}" 2>/dev/null)
fi

for p in "${!owner_of[@]}"; do
    why=${owner_of[$p]}
    pkgs=""
    r=$(realpath "$p")
    for cand in "$p" "${p#/usr}" "/usr$p" "$r"; do
        [ -n "${pkg_of[$cand]:-}" ] && { pkgs=${pkg_of[$cand]}; break; }
    done
    if [ -z "$pkgs" ]; then
        problems+=("$why: $p belongs to no Debian package (installed by hand?): install it from a package and add that to $list")
        continue
    fi
    ok=0 names=()
    IFS=', ' read -r -a owners <<<"$pkgs"
    for o in "${owners[@]}"; do
        o=${o%%:*}
        [ -n "$o" ] || continue
        names+=("$o")
        if [ -n "${listed[$o]:-}" ] || implied "$o"; then ok=1; fi
    done
    [ -z "${CHECK_DEPS_VERBOSE:-}" ] || echo "$me: $why: $p is in ${names[*]}" >&2
    [ "$ok" -eq 1 ] || problems+=("$why: $p is in ${names[*]}, which $list does not list: add ${names[0]}")
done

if [ ${#problems[@]} -gt 0 ]; then
    {
        echo "$me: $list misses packages the C code builds against (a fresh Debian 12 machine could not build it):"
        printf '%s\n' "${problems[@]}" | sort | sed 's/^/  /'
    } >&2
    exit 1
fi
exit 0
