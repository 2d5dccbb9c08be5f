#!/usr/bin/env bash
# Installs what the tests need from Debian's packages if it is missing:
# Xvfb (the X11 capture test starts one on a private display, unix socket
# only), mosquitto and nats-server (the broker tests start them on loopback
# ports of their own and stop them; the packages' system services are not
# used), and mosquitto-clients (python/tests/test_docs.py publishes to the
# MQTT example with mosquitto_pub, a real MQTT client), zstd (`make soak`
# compresses its zstd bombs with it), and Chromium with its driver (the
# dashboard's tests drive a real headless browser through selenium).
# examples/monitoring's alert rules are checked with promtool: taken out of
# Debian's prometheus package into target/tools (downloaded, unpacked, never
# installed, so no Prometheus service is started).
set -euo pipefail
missing=()
command -v Xvfb >/dev/null || missing+=(xvfb)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
command -v zstd >/dev/null || missing+=(zstd)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if ((${#missing[@]})); then
    run=()
    [ "$(id -u)" -eq 0 ] || run=(sudo)
    "${run[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${run[@]}" apt-get install -y -qq "${missing[@]}"
fi

tools="${CARGO_TARGET_DIR:-$(pwd)/target}/tools"
if ! command -v promtool >/dev/null && [ ! -x "$tools/usr/bin/promtool" ]; then
    mkdir -p "$tools"
    run=()
    [ "$(id -u)" -eq 0 ] || run=(sudo)
    (cd "$tools" && { apt-get download -qq prometheus 2>/dev/null || { "${run[@]}" apt-get update -qq && apt-get download -qq prometheus; }; } \
        && dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb)
fi
