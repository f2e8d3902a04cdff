#!/bin/sh
# Two WayGPS instances and their store on one machine, without docker (docs/scaling.md).
#   examples/cluster/run-two.sh            # from the repository, after `make venv`
# The store (SecantusDB as a one-node replica set) runs on its own, so that either instance can
# be stopped or killed while the other carries on. Ctrl-C stops all three.
# Then: haproxy -f examples/haproxy.cfg (devices on 8080-8082, dashboards on 8000),
#       .venv/bin/waygps status -c examples/cluster/a.toml --url http://127.0.0.1:9100/
set -eu
cd "$(dirname "$0")/../.."
BIN=.venv/bin
mkdir -p var/cluster
"$BIN/secantusd-py" --host 127.0.0.1 --port 27018 --storage-path var/cluster/db --log-level WARNING \
    > var/cluster/store.log 2>&1 &
STORE=$!
A=; B=
cleanup() {
    trap - INT TERM EXIT
    for pid in $A $B; do kill "$pid" 2>/dev/null || true; done
    for pid in $A $B; do wait "$pid" 2>/dev/null || true; done
    kill "$STORE" 2>/dev/null || true
    wait "$STORE" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
sleep 3
if ! kill -0 "$STORE" 2>/dev/null; then
    echo "the store did not start (port 27018 in use?): see var/cluster/store.log" >&2
    exit 1
fi
"$BIN/twistd" --nodaemon --pidfile= waygps --config examples/cluster/a.toml > var/cluster/a.log 2>&1 &
A=$!
"$BIN/twistd" --nodaemon --pidfile= waygps --config examples/cluster/b.toml > var/cluster/b.log 2>&1 &
B=$!
echo "store pid $STORE, instance a pid $A (logs var/cluster/a.log), instance b pid $B (var/cluster/b.log)"
wait $A $B
