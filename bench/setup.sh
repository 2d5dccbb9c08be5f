#!/usr/bin/env bash
# Installs the benchmark peers that come from Debian (wrk, nginx) if missing.
set -euo pipefail
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v Xvfb >/dev/null || missing+=(xvfb)
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
