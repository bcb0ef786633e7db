#!/bin/sh
# Install the Debian packages in deps/debian.txt that are missing.
# Runs apt-get update first when the package lists are older than a day or absent.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
list="$here/deps/debian.txt"
want=$(grep -v '^[[:space:]]*#' "$list" | tr -s ' \n' ' ')
missing=""
for p in $want; do
  st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case "$st" in ii*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
lists=/var/lib/apt/lists
if [ -z "$(find "$lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]; then
  $SUDO apt-get update -q
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
