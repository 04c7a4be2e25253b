#!/usr/bin/env bash
# Runs the load-generator measurements of BENCH.md against `cuedeck serve` and the bare
# echo server, on loopback, one after the other, and writes one JSON file per run to
# OUT (default benches/results/) plus the latency-vs-load plot.
#
#   scripts/loadtest.sh                 # everything (about 25 minutes)
#   QUICK=1 scripts/loadtest.sh         # short runs (about 5 minutes)
#   IDLE_MAX=19000 scripts/loadtest.sh  # also hold that many idle calls (nofile permitting)
#   PARTS="repeat reload" REPEAT=3 scripts/loadtest.sh
#                                       # only some parts: load long idle reload repeat
#                                       # (repeat: the 1,000-call pair REPEAT times, 60 s each,
#                                       # for the run-to-run spread of the tails)
#
# Needs: cargo build --release --bin cuedeck --example loadgen --example echo_server
# (or BIN=DIR holding cuedeck and examples/, e.g. to compare two builds).
# Raising the hard nofile limit needs root; without it the runs are capped by the limit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${OUT:-$root/benches/results}
bin=${BIN:-$root/target/release}
quick=${QUICK:-0}
idle_max=${IDLE_MAX:-0}
parts=" ${PARTS:-load long idle reload} "
repeat=${REPEAT:-3}
part() { [[ "$parts" == *" $1 "* ]]; }
port=${PORT:-7720}
echo_port=$((port + 1))
work=$(mktemp -d /tmp/cuedeck-loadtest.XXXXXX)
mkdir -p "$out"

ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"

cat > "$work/cuedeck.toml" <<EOF
[limits]
max_connections = 150000
max_calls = 150000
EOF

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_cuedeck() {
  rm -f "$work"/db*
  RUST_LOG=warn "$bin/cuedeck" serve --config "$work/cuedeck.toml" --listen "127.0.0.1:$port" \
    --db "sqlite://$work/db" --cards "${1:-$root/battlecards}" --no-watch >"$work/server.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 50); do
    grep -q "listening" "$work/server.log" && return 0
    sleep 0.2
  done
  echo "cuedeck did not start" >&2; cat "$work/server.log" >&2; exit 1
}
stop_cuedeck() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }
start_echo() {
  "$bin/examples/echo_server" "127.0.0.1:$echo_port" >"$work/echo.log" 2>&1 &
  echo_pid=$!
  pids+=("$echo_pid")
  sleep 0.5
}
stop_echo() { kill "$echo_pid"; wait "$echo_pid" 2>/dev/null || true; }

lg() { "$bin/examples/loadgen" "$@" >/dev/null; }

if [ "$quick" = 1 ]; then levels="250 1000 2000"; dur=10; long=30; warm=5
else levels="250 500 1000 2000"; dur=30; long=300; warm=10; fi

# Latency vs load: the same schedule against cuedeck and the echo server, each level on a
# fresh server process.
part load && for calls in $levels; do
  start_cuedeck
  lg run --url "ws://127.0.0.1:$port/v1/stream" --calls "$calls" --rate 3 --duration "$dur" \
    --warmup "$warm" --server-pid "$server_pid" --json "$out/run-cuedeck-$calls.json"
  stop_cuedeck
  start_echo
  lg run --url "ws://127.0.0.1:$echo_port/" --echo --calls "$calls" --rate 3 --duration "$dur" \
    --warmup "$warm" --server-pid "$echo_pid" --json "$out/run-echo-$calls.json"
  stop_echo
done

# The acceptance run: 1,000 calls x 3 partials/s for 5 minutes (echo: the same schedule).
if part long; then
start_cuedeck
lg run --url "ws://127.0.0.1:$port/v1/stream" --calls 1000 --rate 3 --duration "$long" \
  --warmup "$warm" --server-pid "$server_pid" --json "$out/long-cuedeck-1000.json"
stop_cuedeck
start_echo
lg run --url "ws://127.0.0.1:$echo_port/" --echo --calls 1000 --rate 3 --duration "$long" \
  --warmup "$warm" --server-pid "$echo_pid" --json "$out/long-echo-1000.json"
stop_echo
fi

# The 1,000-call pair again, REPEAT times for 60 s, alternating: tails vary run to run.
if part repeat; then
for i in $(seq "$repeat"); do
  start_cuedeck
  lg run --url "ws://127.0.0.1:$port/v1/stream" --calls 1000 --rate 3 --duration 60 \
    --warmup "$warm" --server-pid "$server_pid" --json "$out/repeat-cuedeck-1000-$i.json"
  stop_cuedeck
  start_echo
  lg run --url "ws://127.0.0.1:$echo_port/" --echo --calls 1000 --rate 3 --duration 60 \
    --warmup "$warm" --server-pid "$echo_pid" --json "$out/repeat-echo-1000-$i.json"
  stop_echo
done
fi

# Memory per idle connected call: RSS delta over 5,000 calls on a fresh process.
if part idle; then
start_cuedeck
lg idle --url "ws://127.0.0.1:$port/v1/stream" --calls 5000 --server-pid "$server_pid" \
  --json "$out/idle-cuedeck-5000.json"
stop_cuedeck
start_echo
lg idle --url "ws://127.0.0.1:$echo_port/" --echo --calls 5000 --server-pid "$echo_pid" \
  --json "$out/idle-echo-5000.json"
stop_echo
fi

# Hot reload of a 100k-phrase library under load: the same schedule without and with a
# SIGHUP every 10 s on fresh servers; the logs of cards received must be identical.
if part reload; then
mkdir -p "$work/cards100k"
cp "$root"/battlecards/*.yaml "$work/cards100k/"
"$bin/examples/loadgen" cards --phrases 100000 --out "$work/cards100k" >/dev/null
for mode in steady reload; do
  extra=()
  [ "$mode" = reload ] && extra=(--reload-every 10)
  start_cuedeck "$work/cards100k"
  lg run --url "ws://127.0.0.1:$port/v1/stream" --calls 1000 --rate 3 --duration "$((dur * 2))" \
    --warmup "$warm" --server-pid "$server_pid" --card-log "$work/cards-$mode.txt" \
    --json "$out/reload100k-$mode.json" "${extra[@]}"
  stop_cuedeck
done
if cmp -s "$work/cards-steady.txt" "$work/cards-reload.txt"; then same=true; else same=false; fi
printf '{"mode":"reload-compare","cards_steady":%s,"cards_reload":%s,"identical":%s,"only_steady":%s,"only_reload":%s}\n' \
  "$(wc -l <"$work/cards-steady.txt")" "$(wc -l <"$work/cards-reload.txt")" "$same" \
  "$(comm -23 "$work/cards-steady.txt" "$work/cards-reload.txt" | wc -l)" \
  "$(comm -13 "$work/cards-steady.txt" "$work/cards-reload.txt" | wc -l)" >"$out/reload100k-compare.json"
fi

if [ "$idle_max" -gt 0 ]; then
  start_cuedeck
  lg idle --url "ws://127.0.0.1:$port/v1/stream" --calls "$idle_max" --source-ips 8 \
    --concurrency 512 --server-pid "$server_pid" --json "$out/idle-cuedeck-$idle_max.json"
  stop_cuedeck
fi

if compgen -G "$out/run-*.json" >/dev/null; then
  python3 "$root/scripts/plot_latency.py" "$out"/run-*.json -o "$out/latency_vs_load.svg"
fi
echo "results in $out"
