#!/usr/bin/env bash
# End-to-end throughput: N readings (QoS 1 by default) queued in Mosquitto for two
# persistent sessions, then drained by a plain subscriber (mosquitto_sub: the broker's own
# delivery rate) and by Tidewatch (decode, validate, evaluate a threshold rule per reading).
# Usage: N=200000 QOS=1 scripts/load.sh   (needs mosquitto and mosquitto-clients)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"
N=${N:-200000}
QOS=${QOS:-1}
cargo build --release --quiet
BIN=target/release/tidewatch
dir=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port); http=$(free_port)
cleanup() { kill "${broker:-}" "${tw:-}" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

# Queues without limits; up to 1000 QoS 1 messages in flight per client (default 20).
cat > "$dir/mosquitto.conf" <<CONF
user root
listener $port 127.0.0.1
allow_anonymous true
max_queued_messages 0
max_inflight_messages 1000
CONF
mosquitto -c "$dir/mosquitto.conf" >/dev/null 2>&1 & broker=$!
sleep 0.5

cat > "$dir/rules.toml" <<'RULES'
[[rule]]
id = "level"
select = { quantity = "water_level" }
kind = "threshold"
for = "5m"
levels = [{ severity = "yellow", above = "station.warning_level" }, { severity = "red", above = 20 }]
RULES
cat > "$dir/tidewatch.toml" <<CONF
stations = "stations.toml"
rules = ["rules.toml"]
[engine]
workers = ${WORKERS:-1}
idle_source_timeout = "1h"
[mqtt]
broker = "127.0.0.1:$port"
client_id = "tidewatch-load"
[[mqtt.route]]
name = "json"
filter = "tidewatch/json/#"
format = "json"
[http]
listen = "127.0.0.1:$http"
[output]
console = false
alerts_file = "alerts.jsonl"
dead_letter_file = "dead_letters.jsonl"
CONF

# Persistent sessions for both consumers, so the broker queues the backlog for them.
mosquitto_sub -h 127.0.0.1 -p "$port" -c -i baseline -q 1 -t 'tidewatch/json/#' -W 1 >/dev/null 2>&1 || true
# (one reading on a topic nobody subscribes to, to write the registry of stations L0..L999)
$BIN load --broker "127.0.0.1:$port" --count 1 --stations 1000 --qos 0 --write-stations "$dir/stations.toml" --topic-prefix warmup >/dev/null
$BIN run --config "$dir/tidewatch.toml" --duration 2s >/dev/null 2>&1

echo "publishing $N readings at QoS $QOS"
$BIN load --broker "127.0.0.1:$port" --count "$N" --stations 1000 --qos "$QOS"

start=$(date +%s.%N)
mosquitto_sub -h 127.0.0.1 -p "$port" -c -i baseline -q 1 -t 'tidewatch/json/#' -C "$N" >/dev/null
end=$(date +%s.%N)
base=$(python3 -c "print(f'{$N/($end-$start):.0f}')")
echo "mosquitto_sub drained $N in $(python3 -c "print(f'{$end-$start:.2f}')") s: $base readings/s"

rm -f "$dir/alerts.jsonl"
start=$(date +%s.%N)
$BIN run --config "$dir/tidewatch.toml" >"$dir/tw.log" 2>&1 & tw=$!
trap 'cat "$dir/tw.log" | tail -5; cleanup' EXIT
until curl -sf "http://127.0.0.1:$http/healthz" 2>/dev/null | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['readings'] >= $N else 1)"; do
  sleep 0.05
done
end=$(date +%s.%N)
ours=$(python3 -c "print(f'{$N/($end-$start):.0f}')")
echo "tidewatch drained $N in $(python3 -c "print(f'{$end-$start:.2f}')") s (including start-up): $ours readings/s"
curl -s "http://127.0.0.1:$http/healthz"; echo
echo "tidewatch / mosquitto_sub: $(python3 -c "print(f'{100*$ours/$base:.0f}')") %"
