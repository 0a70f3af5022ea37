#!/usr/bin/env bash
# A cluster to try on this machine: PostgreSQL, s3s-fs (an S3 server), three
# tapedeck nodes and HAProxy in front of them, all on loopback.
#
#   scripts/cluster.sh            start everything, print the address and an
#                                 admin key, and stay until Ctrl-C (then stop it all)
#   NODES=5 scripts/cluster.sh    another number of nodes
#
# Needs what `scripts/setup.sh --test` installs (PostgreSQL, HAProxy, s3s-fs).
# Other TAPEDECK_* variables in the environment reach every node (e.g.
# TAPEDECK_LIMITS__CPU_BUDGET_CORES, TAPEDECK_WEB__ALLOWED_HOSTS).
# Everything lives under $CLUSTER_DIR (default ./cluster-data), removed at
# the next start. Ports: HAProxy 8080, nodes 8081.., their calls' UDP
# 50001.., PostgreSQL 55432, S3 59000 (change with LB_PORT, NODE_PORT,
# UDP_PORT, PG_PORT, S3_PORT).
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-3}
DIR=${CLUSTER_DIR:-$PWD/cluster-data}
LB_PORT=${LB_PORT:-8080}
NODE_PORT=${NODE_PORT:-8081}
UDP_PORT=${UDP_PORT:-50001}
PG_PORT=${PG_PORT:-55432}
S3_PORT=${S3_PORT:-59000}
BIN=${CLUSTER_BIN:-${CARGO_TARGET_DIR:-target}/release/tapedeck}

need() { command -v "$1" >/dev/null || [ -x "$2" ] || { echo "cluster: $1 is missing: run scripts/setup.sh --test" >&2; exit 1; }; }
need haproxy /usr/sbin/haproxy
need psql /usr/bin/psql
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PG_BIN/initdb" ] || { echo "cluster: PostgreSQL is missing: run scripts/setup.sh --test" >&2; exit 1; }
S3S=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
[ -x "$S3S" ] || { echo "cluster: s3s-fs is missing: run scripts/setup.sh --test" >&2; exit 1; }
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
if [ ! -x "$BIN" ]; then
  echo "cluster: building the release binary"
  cargo build --release --locked
fi
BIN=$(realpath "$BIN")
DIR=$(realpath -m "$DIR")

pids=()
stop() {
  echo; echo "cluster: stopping"
  # Nodes started again by hand too (their PIDs are in the files).
  for f in "$DIR"/n*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

rm -rf "$DIR"; mkdir -p "$DIR"/{pg,s3/media,logs}
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown -R postgres:postgres "$DIR/pg"
  as_pg=(setpriv --reuid=postgres --regid=postgres --clear-groups)
fi
"${as_pg[@]}" "$PG_BIN/initdb" -D "$DIR/pg/data" -A trust -U postgres -E UTF8 >"$DIR/logs/initdb.log" 2>&1 ||
  { cat "$DIR/logs/initdb.log" >&2; echo "cluster: initdb failed (as root, PostgreSQL runs as postgres: every folder above $DIR must be open to it)" >&2; exit 1; }
"${as_pg[@]}" "$PG_BIN/postgres" -D "$DIR/pg/data" -p "$PG_PORT" -k "$DIR/pg" \
  -c listen_addresses=127.0.0.1 -c max_connections=200 >"$DIR/logs/postgres.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do psql "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -qc 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
psql "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -qc 'CREATE DATABASE tapedeck' >/dev/null
DB="postgres://postgres@127.0.0.1:$PG_PORT/tapedeck"

"$S3S" --host 127.0.0.1 --port "$S3_PORT" --access-key cluster --secret-key cluster-secret "$DIR/s3" >"$DIR/logs/s3.log" 2>&1 &
pids+=($!)

servers=""
for i in $(seq "$NODES"); do
  port=$((NODE_PORT + i - 1))
  # A script per node, so a node stopped by hand starts again the same way.
  cat >"$DIR/start-n$i.sh" <<NODE
#!/usr/bin/env bash
# Starts node n$i of this cluster (its log appended to $DIR/logs/n$i.log).
export TAPEDECK_DATABASE__URL=$DB
export TAPEDECK_STORAGE__KIND=s3 TAPEDECK_STORAGE__BUCKET=media
export TAPEDECK_STORAGE__ENDPOINT=http://127.0.0.1:$S3_PORT
export TAPEDECK_STORAGE__ACCESS_KEY=cluster TAPEDECK_STORAGE__SECRET_KEY=cluster-secret
export TAPEDECK_CLUSTER__ENABLED=true TAPEDECK_CLUSTER__NODE_ID=n$i
export TAPEDECK_CLUSTER__INTERNAL_URL=http://127.0.0.1:$port
export TAPEDECK_CLUSTER__DRAIN_S=\${TAPEDECK_CLUSTER__DRAIN_S:-10}
export TAPEDECK_SERVER__PUBLIC_URL=http://127.0.0.1:$LB_PORT
export TAPEDECK_RTC__PUBLIC_IP=127.0.0.1 TAPEDECK_RTC__UDP_PORT=$((UDP_PORT + i - 1))
"$BIN" serve --data-dir "$DIR/n$i" --listen 127.0.0.1:$port >>"$DIR/logs/n$i.log" 2>&1 &
echo \$! >"$DIR/n$i.pid"
NODE
  chmod +x "$DIR/start-n$i.sh"
  "$DIR/start-n$i.sh"
  pids+=("$(cat "$DIR/n$i.pid")")
  servers+="  server n$i 127.0.0.1:$port check inter 1s fall 2 rise 1"$'\n'
done

cat >"$DIR/haproxy.cfg" <<EOF
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout tunnel 1h
  timeout check 5s
  option http-server-close
  option redispatch
  retries 3
frontend lb
  bind 127.0.0.1:$LB_PORT
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /readyz
$servers
EOF
"$HAPROXY" -db -f "$DIR/haproxy.cfg" >"$DIR/logs/haproxy.log" 2>&1 &
pids+=($!)

for _ in $(seq 150); do
  curl -fs "http://127.0.0.1:$LB_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2
done
KEY=$(TAPEDECK_DATABASE__URL=$DB "$BIN" keys create --user admin --admin --data-dir "$DIR/keys" | tail -1)
# For scripts driving this cluster (bench/cluster.sh).
echo "$DB" >"$DIR/db.url"
echo "$KEY" >"$DIR/admin.key"
cat <<EOF

cluster: $NODES nodes behind HAProxy at http://127.0.0.1:$LB_PORT (logs in $DIR/logs)
  admin key:  $KEY
  the nodes:  curl -H "Authorization: Bearer $KEY" http://127.0.0.1:$LB_PORT/v1/admin/nodes
  a key:      TAPEDECK_DATABASE__URL=$DB $BIN keys create --user ann
  stop one:   kill -TERM \$(cat $DIR/n1.pid) (it drains), or kill -9 (it dies)
  start it:   $DIR/start-n1.sh
Ctrl-C stops everything.
EOF
wait
