#!/usr/bin/env bash
# Runs gatewayq's checks the way CI does: go vet, then every test with the
# race detector against a real Redis. Works on a fresh machine: when no
# Redis answers at $REDIS_ADDR (default 127.0.0.1:6379) it starts one on a
# free port. It installs Debian's redis-server when it is missing, even
# when a Redis answers: the Redis Cluster tests start their own nodes
# (internal/redistest.Cluster). It installs xmllint (libxml2-utils), which
# the XSD agreement tests compare our validator with.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }

redis_answers() ( # host port; a subshell, so the probe's descriptor dies with it
	{ exec 3<>"/dev/tcp/$1/$2"; } 2>/dev/null || exit 1
	printf 'PING\r\n' >&3
	IFS= read -r -t 2 reply <&3 || reply=""
	[[ "$reply" == +PONG* ]]
)

port_free() ( { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null && exit 1 || exit 0 )

apt_install() {
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	log "installing $* with apt-get"
	$sudo apt-get update -qq >/dev/null 2>&1 || true
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! command -v redis-server >/dev/null && [ -z "${REDIS_SERVER:-}" ]; then
	apt_install redis-server || log "could not install redis-server; the Redis Cluster tests will fail"
fi

addr="${REDIS_ADDR:-127.0.0.1:6379}"
started_redis=""
if redis_answers "${addr%:*}" "${addr##*:}"; then
	log "using Redis at $addr"
else
	command -v redis-server >/dev/null || apt_install redis-server
	port=""
	for p in $(seq 6390 6490); do
		if port_free "$p"; then port=$p; break; fi
	done
	[ -n "$port" ] || { log "no free port for a test Redis"; exit 1; }
	dir=$(mktemp -d)
	redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
	started_redis="$dir"
	trap 'kill "$(cat "$started_redis/redis.pid")" 2>/dev/null || true; rm -rf "$started_redis"' EXIT
	for _ in $(seq 1 50); do redis_answers 127.0.0.1 "$port" && break; sleep 0.1; done
	redis_answers 127.0.0.1 "$port" || { log "the test Redis did not start; see $dir/redis.log"; cat "$dir/redis.log" >&2; exit 1; }
	addr="127.0.0.1:$port"
	log "started a test Redis at $addr"
fi
export REDIS_ADDR="$addr"

if ! command -v xmllint >/dev/null; then
	apt_install libxml2-utils || log "could not install xmllint; the XSD agreement tests will fail"
fi
# The monitoring UI's browser test drives Debian's Chromium with Playwright
# (playwright-core from npm, pinned in webui/browsertest/package-lock.json;
# it never downloads a browser of its own).
if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
	apt_install chromium || log "could not install chromium; the monitoring UI browser test will fail"
fi
if ! command -v npm >/dev/null; then
	apt_install nodejs npm || log "could not install node and npm; the monitoring UI browser test will fail"
fi
if [ ! -d webui/browsertest/node_modules/playwright-core ]; then
	log "installing Playwright in webui/browsertest (npm ci)"
	(cd webui/browsertest && npm ci --no-audit --no-fund --loglevel=error) || log "npm ci failed; the monitoring UI browser test will fail"
fi
# docker-compose.yml is checked with Docker Compose v2 itself (`config -q`,
# no engine needed). Debian ships only the end-of-life v1, so when no v2 is
# here, build it once from the Go module proxy into a cache outside the
# checkout.
compose_version=v2.40.3
if ! { command -v docker >/dev/null && docker compose version >/dev/null 2>&1; }; then
	cache="${XDG_CACHE_HOME:-$HOME/.cache}/gatewayq/compose-$compose_version"
	if [ ! -x "$cache/docker-compose" ]; then
		log "building Docker Compose $compose_version from the Go module proxy (once; cached in $cache)"
		src=$(go mod download -json "github.com/docker/compose/v2@$compose_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		mkdir -p "$cache"
		(cd "$src" && GOFLAGS=-mod=mod go build -o "$cache/docker-compose" ./cmd) || log "could not build Docker Compose; the compose check will fail"
	fi
	export PATH="$cache:$PATH"
fi

log "go vet ./..."
go vet ./...
log "go test -race ./..."
go test -race -count=1 -timeout 30m ./...
