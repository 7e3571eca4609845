#!/usr/bin/env bash
# System packages inferhook's local stack needs: a PostgreSQL server, Java 17+ and Maven
# (to fetch and run Kafka); for the console's browser test, Chromium and Node.js 18+ with npm.
# Installs only what is missing; needs root (or sudo) for apt.
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! command -v apt-get >/dev/null; then
  echo "missing ${need[*]}: install them with your package manager, or run 'docker compose up'" >&2
  exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
