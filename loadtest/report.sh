#!/usr/bin/env bash
# Regenerates the figures of RESULTS.md: machine facts, two `compare` runs, a
# 10,000-socket `connect`, a 15,000-agent `fanout`, `deliver` at 5,000 and 10,000
# events/s through the API, and through signed Slack and ClickUp webhooks. Bounded:
# about 20 minutes on 2 cores (most of it is argon2 hashing while provisioning agents).
# The cluster runs need PostgreSQL on 127.0.0.1:5432 (database test, user postgres, or
# DATABASE_URL), Redis on 127.0.0.1:6379 (or REDIS_URL) and psql.
# Output: loadtest/results/{machine,compare,compare-1k,connect-10k,fanout-15k,deliver-5k,
# deliver-10k,deliver-slack-1k,deliver-slack-2k,deliver-clickup-1k,cluster-3,cluster-3-1k,
# cluster-3-3k}.{txt,json}
set -euo pipefail
cd "$(dirname "$0")/.."
out=loadtest/results
mkdir -p "$out"
cargo build --release -p nexus -p nexus-loadtest
lt=target/release/nexus-loadtest
{
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "memory: $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
  echo "kernel: $(uname -r)"
  echo "rustc: $(rustc --version)"
  echo "node: $(node --version)"
  echo "open files: soft $(ulimit -Sn), hard $(ulimit -Hn)"
} | tee "$out/machine.txt"
"$lt" compare --agents "${AGENTS:-2000}" --rate "${RATE:-2000}" --duration "${DURATION:-10}" \
  --rounds "${ROUNDS:-1}" --out "$out/compare.json" | tee "$out/compare.txt"
"$lt" compare --agents 1000 --rate 1000 --duration 10 --out "$out/compare-1k.json" | tee "$out/compare-1k.txt"
"$lt" connect --agents "${CONNECT_AGENTS:-10000}" --out "$out/connect-10k.json" | tee "$out/connect-10k.txt"
"$lt" fanout --agents 15000 --out "$out/fanout-15k.json" | tee "$out/fanout-15k.txt"
"$lt" deliver --agents 1000 --rate 5000 --duration 10 --drain-s 5 --out "$out/deliver-5k.json" | tee "$out/deliver-5k.txt"
"$lt" deliver --agents 1000 --rate 10000 --duration 10 --drain-s 5 --out "$out/deliver-10k.json" | tee "$out/deliver-10k.txt"
"$lt" deliver --via slack --agents 500 --rate 1000 --duration 10 --drain-s 10 --out "$out/deliver-slack-1k.json" | tee "$out/deliver-slack-1k.txt"
"$lt" deliver --via slack --agents 500 --rate 2000 --duration 10 --drain-s 10 --out "$out/deliver-slack-2k.json" | tee "$out/deliver-slack-2k.txt"
"$lt" deliver --via clickup --agents 500 --rate 1000 --duration 10 --drain-s 10 --out "$out/deliver-clickup-1k.json" | tee "$out/deliver-clickup-1k.txt"
"$lt" cluster --nodes 3 --agents 1000 --rate 500 --duration 10 --out "$out/cluster-3.json" | tee "$out/cluster-3.txt"
"$lt" cluster --nodes 3 --agents 1000 --rate 1000 --duration 10 --out "$out/cluster-3-1k.json" | tee "$out/cluster-3-1k.txt"
"$lt" cluster --nodes 3 --agents 3000 --rate 500 --duration 10 --out "$out/cluster-3-3k.json" | tee "$out/cluster-3-3k.txt"
