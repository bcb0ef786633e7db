#!/usr/bin/env bash
# scripts/demo.sh - `make demo`, with `make run` going (in another terminal): makes a
# 5-second test clip (ffmpeg's testsrc2 and a sine tone) and a 5,000-row CSV, submits
# both with spoolctl, shows their progress live, downloads the results and says where
# they are (URLs, downloaded copies, and the files in the blob store).
#
# Settings (the same as scripts/run.sh): API_HOST=127.0.0.1 API_PORT=8080 VAR_DIR=var
# BIN_DIR=bin, and SPOOL_TOKEN when the API wants a bearer token.
set -u -o pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
API_HOST=${API_HOST:-127.0.0.1}
API_PORT=${API_PORT:-8080}
VAR_DIR=${VAR_DIR:-var}
BIN_DIR=${BIN_DIR:-bin}
case $VAR_DIR in /*) ;; *) VAR_DIR=$here/$VAR_DIR ;; esac
case $BIN_DIR in /*) ;; *) BIN_DIR=$here/$BIN_DIR ;; esac
server="http://$API_HOST:$API_PORT"
ctl="$BIN_DIR/spoolctl"
demo="$VAR_DIR/demo"

say() { printf '[demo] %s\n' "$*"; }
die() { say "$*" >&2; exit 1; }

[ -x "$ctl" ] || die "$ctl is missing: build it with 'make'"
command -v ffmpeg >/dev/null || die "ffmpeg is not installed: run 'make deps'"
command -v python3 >/dev/null || die "python3 is not installed: run 'make deps'"
"$ctl" --server "$server" -q health --ready ||
    die "nothing ready at $server: start spool first with 'make run' (in another terminal; same API_PORT)"

mkdir -p "$demo/out" || die "cannot create $demo"

say "making a 5 s 1280x720 test clip: $demo/clip.mp4"
ffmpeg -y -v error -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=5" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=5" \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -shortest "$demo/clip.mp4" ||
    die "ffmpeg could not make the clip"

say "making a 5,000-row dataset: $demo/orders.csv"
awk 'BEGIN {
    srand(42)
    split("Lisbon Oslo Nairobi Lima Osaka Quebec Tallinn Perth", city, " ")
    split("Ada Grace Alan Edsger Barbara Ken Dennis Frances", who, " ")
    print "order,customer,city,amount,date"
    for (i = 1; i <= 5000; i++)
        printf "%d,%s %c.,%s,%.2f,2024-%02d-%02d\n", 100000 + i, who[1 + int(rand() * 8)],
            65 + int(rand() * 26), city[1 + int(rand() * 8)], rand() * 2000,
            1 + int(rand() * 12), 1 + int(rand() * 28)
}' >"$demo/orders.csv" || die "could not write the dataset"

columns='[{"key":"order","label":"Order"},{"key":"customer","label":"Customer"},'
columns+='{"key":"city","label":"City"},{"key":"amount","label":"Amount","format":"number","decimals":2},'
columns+='{"key":"date","label":"Date","format":"date"}]'

video=$("$ctl" --server "$server" -q submit-video "$demo/clip.mp4" --preset mp4-720p) ||
    die "the video was not accepted"
say "submitted the clip: job $video"
export=$("$ctl" --server "$server" -q export "$demo/orders.csv" --title "Demo: 5,000 orders" \
    --columns "$columns") || die "the dataset was not accepted"
say "submitted the dataset: job $export"

status=0
for job in "$video" "$export"; do
    say "waiting for $job"
    "$ctl" --server "$server" wait "$job" || status=1
done
[ $status -eq 0 ] || die "a job did not succeed (see above; spoolctl status ID tells more)"

say "downloading the outputs to $demo/out/"
"$ctl" --server "$server" download "$video" -o "$demo/out/" || status=1
"$ctl" --server "$server" download "$export" -o "$demo/out/" || status=1
[ $status -eq 0 ] || die "a download failed"

# The names of a job's outputs, one a line, from the job as spoolctl shows it in JSON.
output_names() {
    "$ctl" --server "$server" --json status "$1" |
        python3 -c 'import json, sys; [print(o["name"]) for o in json.load(sys.stdin)["outputs"]]'
}

data=${SPOOL_DATA_DIR:-$VAR_DIR/data}
case $data in /*) ;; *) data=$here/$data ;; esac
say "done. The outputs:"
for job in "$video" "$export"; do
    names=$(output_names "$job") && [ -n "$names" ] || die "cannot list the outputs of job $job"
    for name in $names; do # output names are [A-Za-z0-9._-]: safe unquoted and in a URL
        printf '  %s/v1/jobs/%s/outputs/%s  (on the server: %s/jobs/%s/%s/%s)\n' "$server" \
            "$job" "$name" "$data" "${job: -2}" "$job" "$name"
    done
done
for f in "$demo"/out/*; do
    printf '  %s\n' "$f"
done
say "try: $ctl --server $server jobs    and    $ctl --server $server queues"
