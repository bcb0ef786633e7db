#!/bin/sh
# Install the Debian packages in deps/debian.txt that are missing.
# Runs apt-get update first when the package lists are older than a day or absent.
# A line is a package name, optionally followed by "[command NAME]": that package is
# also taken as present when NAME is on PATH although dpkg does not have it (node and
# npm from NodeSource, whose nodejs package bundles npm, or from nvm: installing
# Debian's npm there would make apt replace that nodejs).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
list="$here/deps/debian.txt"
entries=$(sed -e 's/#.*//' "$list")
missing=""
while read -r p rest; do
  [ -n "$p" ] || continue
  st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case "$st" in ii*) continue ;; esac
  case "$rest" in
    "[command "*"]")
      cmd=${rest#"[command "}
      cmd=${cmd%"]"}
      if command -v "$cmd" >/dev/null 2>&1; then continue; fi ;;
    "") ;;
    *) echo "deps: $list: cannot read the line '$p $rest'" >&2; exit 2 ;;
  esac
  missing="$missing $p"
done <<EOF
$entries
EOF
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
lists=/var/lib/apt/lists
if [ -z "$(find "$lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]; then
  $SUDO apt-get update -q
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
