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
trap 'kill $A $B 2>/dev/null; wait $A $B 2>/dev/null; kill $STORE; wait $STORE' INT TERM EXIT
sleep 3
"$BIN/twistd" --nodaemon --pidfile= waygps --config examples/cluster/a.toml > var/cluster/a.log 2>&1 &
A=$!
"$BIN/twistd" --nodaemon --pidfile= waygps --config examples/cluster/b.toml > var/cluster/b.log 2>&1 &
B=$!
echo "store pid $STORE, instance a pid $A (logs var/cluster/a.log), instance b pid $B (var/cluster/b.log)"
wait $A $B
