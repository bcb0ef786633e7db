#!/usr/bin/env bash
# scripts/base-images.sh - a Docker engine that answers, and the Debian 12 base images
# spool's Dockerfiles start from (debian:bookworm, debian:bookworm-slim), made on this
# machine with debootstrap and `docker import` when they are missing: for hosts that
# reach a Debian mirror but no image registry.
#
#   sudo scripts/base-images.sh           make what is missing (about a second when both exist)
#   sudo scripts/base-images.sh --force   make both images again
#
# The engine: when `docker info` does not answer, docker.io is installed if dockerd is
# missing, then started (systemctl when systemd runs, else dockerd in the background
# with its log in /var/log/spool-dockerd.log); it is left running, as a service is.
#
# debian:bookworm is `debootstrap --variant=minbase bookworm` from the mirror this
# machine's apt uses, with apt sources for bookworm, -updates and -security there, and
# what Docker Hub's Debian images set: no service starts while packages install
# (policy-rc.d), no .deb files or translations kept. debian:bookworm-slim is the same
# without documentation, manual pages and locales, and with dpkg told not to install
# them. Both are tagged locally only; a registry's images of the same names would do
# as well, so nothing here runs when they exist.
#
# Certificates this machine trusts beyond Debian's ca-certificates (a TLS-intercepting
# proxy's CA, or your own in /usr/local/share/ca-certificates) go into the images'
# /usr/local/share/ca-certificates, so a build that installs ca-certificates trusts
# what the host trusts (deploy/s3/Dockerfile's `npm ci` fetches over https). On a host
# with only Debian's certificates there are none.
#
# Settings: MIRROR (default: the Debian mirror in /etc/apt/sources.list*, else
# http://deb.debian.org/debian), SPOOL_EXTRA_CA (a PEM file to put there instead of the
# host's extras; "none" for none), SPOOL_BASE_CACHE (downloaded .deb files, default
# /var/cache/spool-base-images).
set -Eeuo pipefail

suite=bookworm
tags=("debian:$suite" "debian:$suite-slim")
cache=${SPOOL_BASE_CACHE:-/var/cache/spool-base-images}
force=0

say() { printf '[base-images] %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
        --force) force=1 ;;
        -h | --help) sed -n '2,/^set -E/{/^set -E/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

need_root() { [ "$(id -u)" -eq 0 ] || die "$1 needs root: run it with sudo"; }

# ---- the engine ----------------------------------------------------------------------------
engine_up() { docker info >/dev/null 2>&1; }

if ! engine_up; then
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        need_root "installing docker.io"
        say "installing docker.io (Debian's Docker engine)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io >&2 ||
            { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y --no-install-recommends docker.io >&2; }
    fi
    if ! pgrep -x dockerd >/dev/null; then
        need_root "starting dockerd"
        if [ -d /run/systemd/system ]; then
            say "starting the docker service"
            systemctl start docker
        else
            say "starting dockerd (no systemd here; its log: /var/log/spool-dockerd.log)"
            setsid dockerd >>/var/log/spool-dockerd.log 2>&1 </dev/null &
        fi
    fi
    for _ in $(seq 120); do
        engine_up && break
        sleep 0.5
    done
    engine_up || die "the Docker engine does not answer after 60 s (docker info; /var/log/spool-dockerd.log)"
fi

missing=()
for t in "${tags[@]}"; do
    if [ "$force" -eq 1 ] || ! docker image inspect "$t" >/dev/null 2>&1; then
        missing+=("$t")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    say "${tags[*]} present"
    exit 0
fi

# ---- the images ----------------------------------------------------------------------------
need_root "debootstrap"
command -v debootstrap >/dev/null || die "debootstrap is missing: run 'make deps' (deps/debian.txt lists it)"

# One builder at a time (two test runs starting together).
mkdir -p "$cache/debs"
exec 9>"$cache/lock"
flock 9
if [ "$force" -eq 0 ]; then
    left=()
    for t in "${missing[@]}"; do docker image inspect "$t" >/dev/null 2>&1 || left+=("$t"); done
    [ ${#left[@]} -gt 0 ] || { say "${tags[*]} present (made meanwhile)"; exit 0; }
fi

if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(grep -hsoE '(URIs:|^deb)[[:space:]]+[^[:space:]]*https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
                 /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources |
             grep -oE 'https?://[^[:space:]]+' | head -n 1 || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
MIRROR=${MIRROR%/}
security=${MIRROR%/debian}/debian-security

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
root=$work/root
t0=$(date +%s)

say "debootstrap --variant=minbase $suite from $MIRROR (a minute or two)"
debootstrap --variant=minbase --cache-dir="$cache/debs" "$suite" "$root" "$MIRROR" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }

cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $suite main
deb $MIRROR $suite-updates main
deb $security $suite-security main
EOF
# Docker Hub's Debian images do the same: services do not start while a package
# installs (there is no init to run them), no .deb files stay behind, no translations.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
# The engine provides these per container.
rm -f "$root/etc/resolv.conf" "$root/etc/hostname" "$root/etc/hosts"
: >"$root/etc/resolv.conf"

# The host's certificates that Debian's ca-certificates does not ship.
extra=$work/extra-ca.pem
: >"$extra"
if [ -n "${SPOOL_EXTRA_CA:-}" ]; then
    [ "$SPOOL_EXTRA_CA" = none ] || cp "$SPOOL_EXTRA_CA" "$extra"
elif command -v openssl >/dev/null && [ -f /etc/ssl/certs/ca-certificates.crt ] &&
     [ -d /usr/share/ca-certificates ]; then
    find /usr/share/ca-certificates -name '*.crt' -exec sh -c \
        'for f; do openssl x509 -noout -fingerprint -sha256 -in "$f"; done' sh {} + \
        2>/dev/null | sort -u >"$work/debian.fp"
    mkdir "$work/host"
    awk -v d="$work/host" '/-----BEGIN CERTIFICATE-----/ { n++ } n { print > (d "/" n ".pem") }' \
        /etc/ssl/certs/ca-certificates.crt
    for f in "$work"/host/*.pem; do
        [ -e "$f" ] || continue
        fp=$(openssl x509 -noout -fingerprint -sha256 -in "$f" 2>/dev/null) || continue
        grep -qxF "$fp" "$work/debian.fp" || cat "$f" >>"$extra"
    done
fi
if [ -s "$extra" ]; then
    say "trusting this host's certificates beyond Debian's (/usr/local/share/ca-certificates/spool-host.crt):"
    openssl crl2pkcs7 -nocrl -certfile "$extra" | openssl pkcs7 -print_certs -noout |
        sed -n 's/^subject=/  /p' >&2
    install -D -m 644 "$extra" "$root/usr/local/share/ca-certificates/spool-host.crt"
fi

rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.bash_history
import_root() {
    tar -C "$root" --numeric-owner --xattrs -cf - . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' \
            --change "LABEL org.opencontainers.image.description=\"debootstrap --variant=minbase $suite from $MIRROR$2 (spool scripts/base-images.sh)\"" \
            - "$1" >/dev/null
    say "$1: $(docker image inspect -f '{{.Id}} {{.Size}}' "$1" | awk '{ printf "%s, %d MB", substr($1, 8, 12), $2 / 1e6 }')"
}
import_root "debian:$suite" ""

# -slim: what Docker Hub's -slim images leave out, now and in every later install.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/man" "$root/usr/share/groff" "$root/usr/share/info" "$root/usr/share/lintian" \
    "$root/usr/share/linda" -mindepth 1 ! -type d -delete 2>/dev/null || true
find "$root/usr/share/locale" -mindepth 1 ! -type d ! -name locale.alias -delete
find "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale" -mindepth 1 -type d -empty -delete
import_root "debian:$suite-slim" ", documentation and locales left out"
say "made ${tags[*]} in $(( $(date +%s) - t0 )) s"
