#!/usr/bin/env bash
# Installs what the tests need from Debian's packages if it is missing:
# Xvfb (the X11 capture test starts one on a private display, unix socket only).
set -euo pipefail
missing=()
command -v Xvfb >/dev/null || missing+=(xvfb)
if ((${#missing[@]})); then
    run=()
    [ "$(id -u)" -eq 0 ] || run=(sudo)
    "${run[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${run[@]}" apt-get install -y -qq "${missing[@]}"
fi
