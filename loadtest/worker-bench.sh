#!/usr/bin/env bash
# The agent-host worker's figures (issue 17): backfill throughput of 1,000 small Claude
# Code-shaped sessions, and the worker's peak memory while it streams one 50 MB session.
# A release node on SQLite pinned to core 0, the worker to core 1.
# Output: loadtest/results/worker.txt. About a minute; needs python3 and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p nexus
nexus=$PWD/target/release/nexus
work=$(mktemp -d)
trap 'kill $node 2>/dev/null || true; rm -rf "$work"' EXIT
export DATABASE_URL=sqlite://$work/n.db NEXUS_JWT_SECRET=bench-secret-0123456789abcdefghijklmnop
port=${PORT:-18091}
"$nexus" migrate >/dev/null
tenant=$("$nexus" tenant create --name bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
"$nexus" tenant update "$tenant" --tier enterprise >/dev/null
agent=$("$nexus" agent create --tenant "$tenant" --name worker)
export NEXUS_CLIENT_ID=$(echo "$agent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
export NEXUS_CLIENT_SECRET=$(echo "$agent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
taskset -c 0 "$nexus" serve --listen 127.0.0.1:$port >"$work/node.log" 2>&1 &
node=$!
until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.2; done

python3 - "$work" <<'PY'
import json, os, sys, uuid
work = sys.argv[1]
def line(i, sid, req):
    # Hex of random bytes: compresses about 2:1, a harder case than real transcripts.
    return json.dumps({"type": "assistant", "sessionId": sid, "timestamp": f"2026-11-30T10:{i % 60:02d}:00Z",
        "requestId": f"r{req}", "message": {"id": f"m{req}", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": os.urandom(150).hex()}],
        "usage": {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 1000}}})
for n in range(3000):  # a fresh 1,000 for each concurrency measured
    sid = str(uuid.uuid4())
    d = os.path.join(work, f"small-{n // 1000}", f"p{n % 20}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, sid + ".jsonl"), "w") as f:
        for i in range(8):
            f.write(line(i, sid, i) + "\n")
big = os.path.join(work, "big")
os.makedirs(big)
sid = str(uuid.uuid4())
with open(os.path.join(big, sid + ".jsonl"), "w") as f:
    i = 0
    while f.tell() < 50 * 1024 * 1024:
        f.write(line(i, sid, i) + "\n")
        i += 1
PY

out=loadtest/results/worker.txt
mkdir -p loadtest/results
{
  echo "small sessions: 1000 files per run, $(du -sb "$work/small-0" | cut -f1) bytes"
  conc=(1 4 8)
  for i in 0 1 2; do
    c=${conc[$i]}
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$work/rss-$c.txt" taskset -c 1 "$nexus" worker run --once --url "http://127.0.0.1:$port" --sessions "$work/small-$i/**/*.jsonl" \
      --quiet-period 0s --backfill-rate 0 --concurrency $c --state-file "$work/state-$c.json" >"$work/worker-$c.log"
    end=$(date +%s.%N)
    uploaded=$(grep -c "session uploaded" "$work/worker-$c.log" || true)
    echo "backfill concurrency $c: $uploaded sessions uploaded in $(python3 -c "print(f'{$end-$start:.2f}')") s = $(python3 -c "print(f'{$uploaded/($end-$start):.0f}')") sessions/s, worker peak RSS $(cat "$work/rss-$c.txt") KiB"
  done
  echo "big session: $(du -b "$work"/big/*.jsonl | cut -f1) bytes"
  /usr/bin/time -f "worker peak RSS %M KiB, %e s wall, %U s user" taskset -c 1 "$nexus" worker run --once \
    --url "http://127.0.0.1:$port" --sessions "$work/big/*.jsonl" --quiet-period 0s \
    --state-file "$work/state-big.json" >"$work/worker-big.log" 2>"$work/time.txt"
  grep -c "session uploaded" "$work/worker-big.log" | sed 's/^/big sessions uploaded: /'
  cat "$work/time.txt"
  echo "its parts stored (count, decoded bytes): $(sqlite3 "$work/n.db" "SELECT count(*), sum(bytes) FROM session_parts WHERE session_id IN (SELECT session_id FROM session_parts WHERE n = 2)")"
} | tee "$out"
