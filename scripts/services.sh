#!/usr/bin/env bash
# Make sure the programs the tests start are installed, and the shared services they
# talk to are running. Under CI=true anything that cannot be had fails the run.
set -euo pipefail

ci="${CI:-false}"
apt_updated=0

fail_or_warn() {
    if [ "$ci" = "true" ]; then
        echo "services: $1" >&2
        exit 1
    fi
    echo "services: warning: $1 (the tests that need it will skip)" >&2
}

apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        fail_or_warn "apt-get is missing; install $* by hand"
        return 1
    fi
    if [ "$apt_updated" = 0 ]; then
        apt-get update -qq >/dev/null
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# redis-server: the tests start their own instances on free ports.
if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server || true
fi
command -v redis-server >/dev/null 2>&1 || fail_or_warn "redis-server is not installed"

# RabbitMQ: the broker tests publish with confirms to a server on 127.0.0.1:5672.
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! rabbit_up; then
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        apt_install rabbitmq-server || true
    fi
    if command -v rabbitmq-server >/dev/null 2>&1; then
        rabbitmq-server -detached >/dev/null 2>&1 || true
        for _ in $(seq 1 60); do rabbit_up && break; sleep 1; done
    fi
    rabbit_up || fail_or_warn "RabbitMQ is not reachable on 127.0.0.1:5672"
fi

# Chromium for the status page test.
if ! command -v chromium >/dev/null 2>&1; then
    apt_install chromium || true
fi
command -v chromium >/dev/null 2>&1 || fail_or_warn "chromium is not installed"
exit 0
