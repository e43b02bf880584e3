#!/usr/bin/env bash
# Hostile input against the release binary, one flood at a time: what each costs in
# dead-letter bytes written per byte sent, and in peak memory (VmHWM).
#   1. HJ 212 TCP listener: 100 MB of "##x" junk on one connection.
#   2. Embedded broker: 10 s of QoS 0 readings as fast as a client can publish.
#   3. MQTT: 20 JSON arrays of 1 MB each of bare numbers (every record refused).
# Usage: scripts/floods.sh   (needs python3 and mosquitto-clients)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"
cargo build --release --quiet
BIN=$PWD/target/release/tidewatch
dir=$(mktemp -d)
trap 'kill "${tw:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mqtt=$(free_port); hj=$(free_port); http=$(free_port)
cat > "$dir/stations.toml" <<'EOF2'
[[station]]
id = "LX"
name = "x"
domain = "water"
location = [119.46, 29.21]
region = "330781"
attributes = { warning_level = 28.0 }
EOF2
printf '[[rule]]\nid = "level"\nselect = { quantity = "water_level" }\nkind = "threshold"\nlevels = [{ severity = "yellow", above = "station.warning_level" }]\n' > "$dir/rules.toml"
cat > "$dir/tidewatch.toml" <<EOF2
stations = "stations.toml"
rules = ["rules.toml"]
[mqtt]
embedded_listen = "127.0.0.1:$mqtt"
embedded_credentials = "creds.toml"
[[mqtt.route]]
name = "json"
filter = "sensors/#"
format = "json"
[[listener]]
name = "loggers"
protocol = "hj212"
listen = "127.0.0.1:$hj"
[http]
listen = "127.0.0.1:$http"
[alerting]
store = "sqlite://alerts.db"
[output]
console = false
dead_letter_file = "dead_letters.jsonl"
EOF2
(cd "$dir" && TIDEWATCH_ADMIN_PASSWORD=x "$BIN" run --config tidewatch.toml > tw.log 2>&1) & 
sleep 3
tw=$(pgrep -f "tidewatch run --config tidewatch.toml" | head -1)
device=$(sed -n 's/^device = "\(.*\)"$/\1/p' "$dir/creds.toml")
python3 - "$dir" "$tw" "$hj" "$mqtt" "$http" "$device" <<'PYTHON'
import glob, json, os, socket, subprocess, sys, time, urllib.request
d, pid, hj, mqtt, http, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
def hwm():
    return next(int(l.split()[1]) // 1024 for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM"))
def letters():
    return sum(os.path.getsize(p) for p in glob.glob(f"{d}/dead_letters.jsonl*"))
def health():
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz"))
def settle():
    last = -1
    while True:
        time.sleep(1.0)
        n = health()["dead_letters"]
        if n == last:
            return
        last = n
print(f"start: peak RSS {hwm()} MiB")

# 1. HJ 212 junk over TCP.
before, sent = letters(), 0
s = socket.create_connection(("127.0.0.1", hj))
chunk = b"##x" * 350_000
start = time.time()
while sent < 100_000_000:
    s.sendall(chunk); sent += len(chunk)
s.close(); settle()
print(f"hj212 junk: {sent/1e6:.0f} MB in {time.time()-start:.1f} s -> {letters()-before} dead-letter bytes "
      f"({(letters()-before)/sent:.5f} per byte), {health()['dead_letters']} counted, peak RSS {hwm()} MiB")

# 2. QoS 0 flood into the embedded broker for 10 s.
line = '{"station":"LX","quantity":"water_level","value":27.0}\n'
with open(f"{d}/flood.txt", "w") as f:
    f.write(line * 200_000)
before_r = health()["readings"]
start = time.time(); published = 0
while time.time() - start < 10:
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", mqtt, "-u", "device", "-P", device, "-q", "0",
                    "-t", "sensors/flood", "-l"], stdin=open(f"{d}/flood.txt"), check=True)
    published += 200_000
time.sleep(3)
print(f"QoS 0 flood: {published} readings published in {time.time()-start-3:.1f} s, "
      f"{health()['readings']-before_r} taken, peak RSS {hwm()} MiB")

# 3. 1 MB arrays of bare numbers over MQTT.
before, sent = letters(), 0
payload = "[" + ",".join(["1"] * 500_000) + "]"
with open(f"{d}/array.json", "w") as f:
    f.write(payload)
for _ in range(20):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", mqtt, "-u", "device", "-P", device, "-q", "1",
                    "-t", "sensors/array", "-f", f"{d}/array.json"], check=True)
    sent += len(payload)
settle()
print(f"refused arrays: {sent/1e6:.0f} MB -> {letters()-before} dead-letter bytes ({(letters()-before)/sent:.5f} per byte), "
      f"peak RSS {hwm()} MiB")
PYTHON
