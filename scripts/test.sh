#!/usr/bin/env bash
# Runs the whole test suite. Installs the servers the tests need when they are missing —
# Mosquitto and its clients, PostgreSQL, VictoriaMetrics (InfluxDB writes), Java and Maven
# for Apache Kafka, openssl (the TLS tests' certificates), Chromium and ChromeDriver (the console's browser test), and
# Python's aiosmtpd as an SMTP server — with apt-get and pip when run
# as root, otherwise it says what to install. Kafka's jars are fetched once from Maven
# Central into ~/.cache/kafka-libs (scripts/kafka.sh); each Kafka test starts its own broker. Each test starts
# its own servers on free ports; PostgreSQL runs as a throwaway cluster on a free port for
# the duration of the run. Nothing here touches ports in use.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
[ -n "$(pg_bin)" ] || need+=(postgresql)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || [ -f "$HOME/.cache/kafka-libs/.kafka-version" ] || need+=(maven)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "the tests need: ${need[*]} (e.g. sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "installing aiosmtpd (the SMTP server the e-mail test sends to)"
  python3 -m pip install -q aiosmtpd 2>/dev/null || python3 -m pip install -q --break-system-packages aiosmtpd
fi
# Apache Kafka's jars, once (about 40 MB; the tests start brokers from them).
bash scripts/kafka.sh fetch
# Debian installs the broker in /usr/sbin, which is not on every user's PATH.
export PATH="$PATH:/usr/sbin"

# A throwaway PostgreSQL for the store tests (PostgreSQL refuses to run as root).
pg_dir=$(mktemp -d)
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$pg_dir"
  as_pg=(runuser -u postgres --)
fi
"${as_pg[@]}" "$(pg_bin)/initdb" -D "$pg_dir/data" -U postgres -A trust >/dev/null
"${as_pg[@]}" "$(pg_bin)/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
trap '"${as_pg[@]}" "$(pg_bin)/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$pg_dir"' EXIT
export TIDEWATCH_TEST_POSTGRES="postgres://postgres@127.0.0.1:$pg_port/postgres"

# Unit, integration and doc tests of every crate (benches are built by clippy in CI).
cargo test --workspace
