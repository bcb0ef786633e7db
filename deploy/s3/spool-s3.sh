#!/bin/bash
# spool-s3: the object store of deploy/s3/Dockerfile. s3rver keeps the objects in /data
# and listens on loopback only; s3proxy (tests/support/s3proxy.py) answers on
# S3_LISTEN, checks every request's signature against S3_ACCESS_KEY/S3_SECRET_KEY and
# adds the multipart calls s3rver lacks (listing and aborting uploads), which spool's
# sweeps use. The bucket S3_BUCKET is created at start when it does not exist.
# Ends when either process ends (tini -g, the entrypoint, stops the other).
set -euo pipefail
: "${S3_ACCESS_KEY:?set S3_ACCESS_KEY (and S3_SECRET_KEY): the credentials clients sign with}"
: "${S3_SECRET_KEY:?set S3_SECRET_KEY}"
bucket=${S3_BUCKET:-spool}
listen=${S3_LISTEN:-0.0.0.0:9000}
region=${S3_REGION:-us-east-1}
upstream=127.0.0.1:4568

# s3rver's ListObjectsV2 continuation tokens use DES, in OpenSSL 3's legacy provider.
# --no-vhost-buckets: the proxy passes the client's Host on (s3:9000 in compose), which
# s3rver would otherwise take for a bucket's name; the proxy does virtual hosts itself.
NODE_OPTIONS="${NODE_OPTIONS:-} --openssl-legacy-provider" \
    node /opt/s3rver/node_modules/s3rver/bin/s3rver.js --silent --no-vhost-buckets -d /data \
    -a "${upstream%:*}" -p "${upstream##*:}" --configure-bucket "$bucket" &
s3rver=$!
for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/${upstream%:*}/${upstream##*:}") 2>/dev/null && break
    kill -0 "$s3rver" 2>/dev/null || { wait "$s3rver"; exit 1; }
    sleep 0.1
done
echo "spool-s3: s3rver $(node -p 'require("/opt/s3rver/node_modules/s3rver/package.json").version') on $upstream, bucket $bucket" >&2

python3 -I /opt/s3rver/s3proxy.py --listen "$listen" --upstream "$upstream" --data-dir /data \
    --creds "$S3_ACCESS_KEY:$S3_SECRET_KEY" --region "$region" &
proxy=$!
set +e
wait -n "$s3rver" "$proxy"
rc=$?
kill "$s3rver" "$proxy" 2>/dev/null
wait
exit "$rc"
