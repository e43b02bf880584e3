#!/usr/bin/env bash
# Runs the whole test suite. Installs the servers the tests need (Mosquitto and its
# clients) when they are missing: with apt-get when run as root, otherwise it says what to
# install. Each test starts its own servers on free ports; nothing here touches ports in use.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
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
# Debian installs the broker in /usr/sbin, which is not on every user's PATH.
export PATH="$PATH:/usr/sbin"

# Unit, integration and doc tests of every crate (benches are built by clippy in CI).
cargo test --workspace
