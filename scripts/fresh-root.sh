#!/usr/bin/env bash
# scripts/fresh-root.sh - run `make test` (and start `make run` once) on a fresh Debian 12
# machine: a debootstrap root of bookworm, --variant=minbase plus build-essential, git,
# python3 and curl, nothing else (what README.md promises to start from). Everything
# else must come from deps/debian.txt, which `make test` installs with apt-get, so a
# package this machine has only by accident shows up as a failure here.
#
#   sudo scripts/fresh-root.sh              make test, then a make run smoke check
#   sudo scripts/fresh-root.sh --no-run     make test only
#   sudo scripts/fresh-root.sh --keep       keep the root afterwards (its path is printed)
#   sudo scripts/fresh-root.sh -- CMD...    run CMD in /src instead (as root, with bash -c)
#
# The tree is copied in as it is checked out, uncommitted changes included (git's
# tracked and untracked, not ignored files: no build/, bin/ or var/). It runs as root
# inside the root, in private mount and PID namespaces (unshare): /proc, /sys, /dev,
# /dev/pts and /dev/shm are mounted there only, so they vanish with the namespace on
# every exit path (an error, Ctrl-C, kill -9 of this script), and so does every process
# a test leaves behind. The network is the host's (apt-get needs the mirror).
#
# Cached under $SPOOL_FRESH_CACHE (default /var/cache/spool-fresh-root):
#   base-*.tar   the debootstrap result, one per mirror and package set; delete it to
#                bootstrap again (it is rebuilt when older than 30 days)
#   apt/         the .deb files `make test` downloaded, so a rerun installs from disk
#   runs/        the roots of runs in progress (removed at the end unless --keep)
#
# Settings: MIRROR (default: the Debian mirror in /etc/apt/sources.list*, else
# http://deb.debian.org/debian), SPOOL_FRESH_CACHE.
# Exit status: that of the command run in the root (0 when everything passed).
set -Eeuo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${SPOOL_FRESH_CACHE:-/var/cache/spool-fresh-root}
suite=bookworm
include=build-essential,git,python3,curl
keep=0
smoke=1
cmd=""

say() { printf '[fresh-root] %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
        --keep) keep=1 ;;
        --no-run) smoke=0 ;;
        --) shift; cmd="$*"; break ;;
        -h | --help) sed -n '2,/^set -E/{/^set -E/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mounts): run it with sudo"
for tool in debootstrap unshare chroot tar; do
    command -v "$tool" >/dev/null || die "$tool is missing: run 'make deps' (deps/debian.txt lists debootstrap)"
done

# The Debian mirror this machine uses, so the root gets the same packages.
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(grep -hsoE '(URIs:|^deb)[[:space:]]+[^[:space:]]*https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
                 /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources |
             grep -oE 'https?://[^[:space:]]+' | head -n 1 || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
MIRROR=${MIRROR%/}
security=${MIRROR%/debian}/debian-security
arch=$(dpkg --print-architecture)

mkdir -p "$cache/apt/partial" "$cache/runs"
key=$(printf '%s %s %s %s' "$suite" "$arch" "$MIRROR" "$include" | md5sum | cut -c1-12)
base="$cache/base-$suite-$arch-$key.tar"

# ---- the base root, bootstrapped once -----------------------------------------------------
if [ -f "$base" ] && [ -n "$(find "$base" -mtime +30)" ]; then
    say "the cached base root is over 30 days old: bootstrapping again"
    rm -f "$base"
fi
if [ ! -f "$base" ]; then
    boot=$(mktemp -d "$cache/runs/boot.XXXXXX")
    trap 'rm -rf --one-file-system "$boot"' EXIT
    say "debootstrap $suite --variant=minbase --include=$include from $MIRROR (a few minutes, once)"
    debootstrap --variant=minbase --include="$include" "$suite" "$boot/root" "$MIRROR" \
        >"$boot/debootstrap.log" 2>&1 || { tail -n 30 "$boot/debootstrap.log" >&2; die "debootstrap failed"; }
    # What a Debian installer leaves that debootstrap does not: apt sources with updates
    # and security, and an /etc/hosts naming localhost.
    cat >"$boot/root/etc/apt/sources.list" <<EOF
deb $MIRROR $suite main
deb $MIRROR $suite-updates main
deb $security $suite-security main
EOF
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$boot/root/etc/hosts"
    rm -rf "$boot/root/var/cache/apt/archives"/*.deb "$boot/root/var/lib/apt/lists"/*_Packages
    tar -C "$boot/root" --numeric-owner -cf "$base.tmp" .
    mv "$base.tmp" "$base"
    rm -rf --one-file-system "$boot"
    trap - EXIT
    say "cached $base ($(du -h "$base" | cut -f1))"
fi

# ---- this run's root ---------------------------------------------------------------------
run=$(mktemp -d "$cache/runs/run.XXXXXX")
root="$run/root"
cleanup() {
    local rc=$?
    # The mounts live in the namespace, which is gone by now; refuse to delete through
    # one anyway, should something have mounted there from outside.
    if grep -qF " $root/" /proc/self/mountinfo 2>/dev/null; then
        say "something is still mounted under $root: leaving it for you to unmount"
    elif [ "$keep" -eq 1 ]; then
        say "kept the root: $root"
    else
        rm -rf --one-file-system "$run"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$root"
tar -C "$root" --numeric-owner -xf "$base"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The host's network, not the root, may need an extra CA (a proxy that intercepts TLS,
# which the host trusts through NODE_EXTRA_CA_CERTS or npm's cafile): npm in the root
# (make test installs the pinned npm packages) gets the same bundle, and nothing else
# of the host's set-up. On a machine with a direct connection there is none to pass.
host_ca=${NODE_EXTRA_CA_CERTS:-}
[ -n "$host_ca" ] || host_ca=$(npm config get cafile 2>/dev/null || true)
node_ca=""
if [ -n "$host_ca" ] && [ "$host_ca" != null ] && [ -f "$host_ca" ]; then
    cp "$host_ca" "$root/etc/spool-host-ca.crt"
    node_ca=/etc/spool-host-ca.crt
fi

# The tree as checked out (git's view when it is a checkout: no build/, bin/, var/).
mkdir -p "$root/src"
if git -C "$here" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$here" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -) | tar -C "$root/src" -xf -
else
    tar -C "$here" --exclude=./build --exclude=./bin --exclude=./var --exclude=./.git -cf - . |
        tar -C "$root/src" -xf -
fi

if [ -z "$cmd" ]; then
    cmd='make test'
    [ "$smoke" -eq 0 ] || cmd="$cmd && bash scripts/fresh-root-smoke.sh"
fi
say "in $root: $cmd"

# Inside private mount and PID namespaces: mount what a booted machine has, chroot, run.
# The downloaded .deb files go to the cache (bind-mounted), so a rerun need not fetch them.
set +e
unshare --mount --pid --fork --propagation private -- bash -eu -c '
    root=$1 cache=$2 cmd=$3 node_ca=$4
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --bind /dev "$root/dev"
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
    mount --bind "$root/dev/pts/ptmx" "$root/dev/ptmx"
    mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
    mount --bind "$cache/apt" "$root/var/cache/apt/archives"
    exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root TERM=dumb DEBIAN_FRONTEND=noninteractive ${node_ca:+NODE_EXTRA_CA_CERTS=$node_ca} \
        /bin/bash -c "cd /src && $cmd"
' fresh-root "$root" "$cache" "$cmd" "$node_ca"
rc=$?
set -e
if [ "$rc" -eq 0 ]; then
    say "passed in a fresh $suite root: $cmd"
else
    say "FAILED (status $rc) in a fresh $suite root: $cmd"
fi
exit "$rc"
