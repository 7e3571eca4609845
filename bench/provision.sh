#!/usr/bin/env bash
# What `make bench` needs beyond `make provision`: wrk (Debian's package) for closed-loop
# HTTP load. Installs it only when missing; needs root (or sudo) for apt.
set -euo pipefail
command -v wrk >/dev/null && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! command -v apt-get >/dev/null; then
  echo "wrk is missing: install it with your package manager" >&2
  exit 1
fi
echo "installing wrk"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk
