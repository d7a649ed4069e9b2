#!/bin/sh
# Installs the Debian packages that building, testing and running the project
# need: only those missing, so it is quick and idempotent. Run as root on a
# Debian machine (the Makefile calls it when a dependency is absent).
set -eu

PACKAGES="build-essential pkg-config clang valgrind zip unzip curl
libyaml-dev libjansson-dev libzip-dev libcurl4-openssl-dev libcmocka-dev libuv1-dev
libsqlite3-dev libh2o-dev libssl-dev"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing; run this script as root" >&2
    exit 1
fi

echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
