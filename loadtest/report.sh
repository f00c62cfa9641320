#!/usr/bin/env bash
# Regenerates the figures of RESULTS.md: machine facts; `compare` unpinned (2,000 and
# 1,000 agents) and pinned; a 10,000-socket `connect`; a 15,000-agent `fanout`; `deliver`
# at 5,000 and 10,000 events/s unpinned; per node core (node on CPU 0, the tool on CPU 1):
# `deliver` through the single-event API at 5,000/s, through the batch API
# (`POST /api/events`, 100 events per request or every 5 ms) at $BATCH_RATES, through
# signed Slack webhooks at 5,000/s; Slack and ClickUp webhooks unpinned; `cluster` with
# 3 nodes (1,000 and 3,000 agents) and 3 × 15,000 sockets, each `cluster` beside the
# Socket.IO baseline as 3 processes on `@socket.io/redis-adapter` unless --nexus-only.
# Bounded: about 30 minutes on 2 cores, most of it argon2 hashing while provisioning
# agents (the 45,000 cluster agents are copied in SQL and take seconds).
# Needs ≥ 2 CPUs (the pinned runs use CPUs 0 and 1) and taskset (util-linux). The cluster
# runs need PostgreSQL on 127.0.0.1:5432 (database test, user postgres, or DATABASE_URL),
# Redis on 127.0.0.1:6379 (or REDIS_URL), psql, and Node ≥ 20 with npm.
# Output: loadtest/results/{machine,compare,compare-1k,compare-pinned,connect-10k,
# fanout-15k,deliver-5k,deliver-10k,deliver-5k-pinned,deliver-batch-<rate>-pinned,
# deliver-slack-1k,deliver-slack-2k,deliver-slack-5k-pinned,deliver-clickup-1k,cluster-3,
# cluster-3-1k,cluster-3-3k,cluster-3x15k}.{txt,json}
set -euo pipefail
cd "$(dirname "$0")/.."
out=loadtest/results
mkdir -p "$out"
cargo build --release -p nexus -p nexus-loadtest
lt="${CARGO_TARGET_DIR:-target}/release/nexus-loadtest"
pin=(--node-cpus 0 --client-cpus 1)
{
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "memory: $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
  echo "kernel: $(uname -r)"
  echo "rustc: $(rustc --version)"
  echo "node: $(node --version)"
  echo "open files: soft $(ulimit -Sn), hard $(ulimit -Hn)"
} | tee "$out/machine.txt"
run() { # run NAME ARGS…: the tool's text on stdout and NAME.txt, its JSON in NAME.json
  local name=$1
  shift
  "$lt" "$@" --out "$out/$name.json" | tee "$out/$name.txt"
}
run compare compare --agents "${AGENTS:-2000}" --rate "${RATE:-2000}" --duration "${DURATION:-10}" \
  --rounds "${ROUNDS:-1}"
run compare-1k compare --agents 1000 --rate 1000 --duration 10
run compare-pinned compare --agents 2000 --rate 2000 --duration 10 "${pin[@]}"
run connect-10k connect --agents "${CONNECT_AGENTS:-10000}"
run fanout-15k fanout --agents 15000
run deliver-5k deliver --agents 1000 --rate 5000 --duration 10 --drain-s 5
run deliver-10k deliver --agents 1000 --rate 10000 --duration 10 --drain-s 5
run deliver-5k-pinned deliver --agents 1000 --rate 5000 --duration 10 --drain-s 5 "${pin[@]}"
for rate in ${BATCH_RATES:-5000 10000 20000 30000}; do
  run "deliver-batch-$((rate / 1000))k-pinned" deliver --via batch --batch-size 100 \
    --agents 1000 --rate "$rate" --duration 10 --drain-s 10 "${pin[@]}"
done
run deliver-slack-1k deliver --via slack --agents 500 --rate 1000 --duration 10 --drain-s 10
run deliver-slack-2k deliver --via slack --agents 500 --rate 2000 --duration 10 --drain-s 10
run deliver-slack-5k-pinned deliver --via slack --agents 500 --rate 5000 --duration 10 --drain-s 10 \
  "${pin[@]}"
run deliver-clickup-1k deliver --via clickup --agents 500 --rate 1000 --duration 10 --drain-s 10
run cluster-3 cluster --nodes 3 --agents 1000 --rate 500 --duration 10
run cluster-3-1k cluster --nodes 3 --agents 1000 --rate 1000 --duration 10 --nexus-only
run cluster-3-3k cluster --nodes 3 --agents 3000 --rate 500 --duration 10 --nexus-only
run cluster-3x15k cluster --nodes 3 --agents 45000 --rate 5000 --duration 10 --drain-s 15 \
  --settle-s 5
