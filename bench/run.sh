#!/usr/bin/env bash
# `make bench`: the ai-gateway data-plane benchmark. Everything runs on 127.0.0.1.
#
#   1. fake-provider (release, --no-record), nginx (plain keep-alive reverse proxy) and ai-gateway,
#      the latter two in front of the fake provider;
#   2. wrk drives each target (direct, nginx, gateway) with the same settings after a warm-up:
#      requests/s, p50, p99, non-2xx and socket errors. nginx and the gateway are measured in
#      BENCH_ROUNDS alternating rounds (nginx, gateway, nginx, gateway, ...), so that both see the
#      same machine: a shared VM's speed drifts by tens of percent over minutes;
#   3. the gateway's peak RSS during its wrk runs;
#   4. gateway rps / nginx rps per round, and their median, PASS if the median is >= 0.5;
#   5. 1,000 concurrent streams through the gateway (fake provider restarted with a token interval):
#      gateway VmRSS once all have their first SSE bytes, PASS if < 100 MB.
#
# Exits non-zero only when something failed to run (a process did not start or crashed, wrk or the
# stream client did not run); a missed threshold prints FAIL and still exits 0.
#
# Environment (all optional):
#   BENCH_BIN_DIR       directory holding release ai-gateway and fake-provider (skips the build)
#   BENCH_SCRATCH_PATH  --scratch-path for the release build (default: SwiftPM's .build)
#   BENCH_THREADS=2 BENCH_CONNECTIONS=64 BENCH_DURATION=8 BENCH_WARMUP=3   wrk settings (seconds)
#   BENCH_ROUNDS=5      alternating nginx/gateway rounds
#   BENCH_STREAMS=1000 BENCH_STREAM_TOKENS=250 BENCH_STREAM_INTERVAL_MS=100  stream test
#   BENCH_BUDGET=400    seconds the benchmark (after the build) may take before it is aborted
#   BENCH_KEEP=1        keep the temporary directory (logs, configs)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
DURATION="${BENCH_DURATION:-8}"
ROUNDS="${BENCH_ROUNDS:-5}"
WARMUP="${BENCH_WARMUP:-3}"
STREAMS="${BENCH_STREAMS:-1000}"
STREAM_TOKENS="${BENCH_STREAM_TOKENS:-250}"
STREAM_INTERVAL_MS="${BENCH_STREAM_INTERVAL_MS:-100}"
BUDGET="${BENCH_BUDGET:-400}"
RATIO_REQUIRED="0.5"
STREAM_RSS_LIMIT_MB="100"

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------------
need_install=()
command -v wrk >/dev/null 2>&1 || need_install+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_install+=(nginx-light)
if [ "${#need_install[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${need_install[*]}; install them (apt-get install -y wrk nginx-light) or run as root"
    say "bench: installing ${need_install[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends wrk nginx-light >/dev/null; then
        apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends wrk nginx-light >/dev/null \
            || die "apt-get install wrk nginx-light failed"
    fi
fi
NGINX="$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)"
command -v python3 >/dev/null 2>&1 || die "python3 is required"
command -v curl >/dev/null 2>&1 || die "curl is required"

# --- binaries ----------------------------------------------------------------------------------
if [ -n "${BENCH_BIN_DIR:-}" ]; then
    BIN="$BENCH_BIN_DIR"
else
    scratch=()
    [ -n "${BENCH_SCRATCH_PATH:-}" ] && scratch=(--scratch-path "$BENCH_SCRATCH_PATH")
    step "building release binaries"
    (cd "$ROOT" && swift build -c release "${scratch[@]}" --product ai-gateway) || die "release build of ai-gateway failed"
    (cd "$ROOT" && swift build -c release "${scratch[@]}" --product fake-provider) || die "release build of fake-provider failed"
    BIN="$(cd "$ROOT" && swift build -c release "${scratch[@]}" --show-bin-path)"
fi
GATEWAY="$BIN/ai-gateway"
FAKE="$BIN/fake-provider"
[ -x "$GATEWAY" ] || die "no ai-gateway binary at $GATEWAY"
[ -x "$FAKE" ] || die "no fake-provider binary at $FAKE"

# --- process bookkeeping and cleanup -----------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/ai-gateway-bench.XXXXXX")"
PIDS=()          # long-running processes we started, stopped in reverse order
WATCHDOG=""
SAMPLER=""
FAILED_TO_RUN=0

stop_pid() { # stop_pid PID [grace-seconds]
    local pid="$1" grace="${2:-5}" i children
    kill -0 "$pid" 2>/dev/null || return 0
    children="$(pgrep -P "$pid" 2>/dev/null || true)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    # nginx workers (and anything else the process left behind), by parent pid only.
    for c in $children; do
        kill -0 "$c" 2>/dev/null && kill -KILL "$c" 2>/dev/null || true
    done
    return 0
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$SAMPLER" ] && stop_pid "$SAMPLER" 1
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[$i]}" 5
    done
    [ -n "$WATCHDOG" ] && stop_pid "$WATCHDOG" 1
    if [ "$rc" -ne 0 ] || [ "$FAILED_TO_RUN" -ne 0 ] || [ -n "${BENCH_KEEP:-}" ]; then
        say "bench: logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say "bench: interrupted" >&2; exit 130' INT
trap 'say "bench: terminated (time budget of ${BUDGET}s exceeded?)" >&2; exit 124' TERM

# Whole-run bound: every step below has its own timeout; this is the backstop.
( sleep "$BUDGET"; echo "bench: time budget of ${BUDGET}s exceeded, aborting" >&2; kill -TERM $$ 2>/dev/null ) &
WATCHDOG=$!

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((STREAMS * 2 + 512)) ]; then
    say "bench: warning: open-file limit is only $NOFILE; the $STREAMS-stream test may hit it"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

log_tail() { # log_tail FILE LABEL
    [ -s "$1" ] || return 0
    say "--- last lines of $2 ($1):"
    tail -n 20 "$1" | sed 's/^/    /'
}

# start_fake OUTFILE [port] [extra args...]: starts fake-provider, sets FAKE_PID and FAKE_PORT.
start_fake() {
    local out="$1" port="$2"; shift 2
    "$FAKE" --host 127.0.0.1 --port "$port" --no-record "$@" >"$out" 2>"$out.err" &
    FAKE_PID=$!
    PIDS+=("$FAKE_PID")
    local i line
    for ((i = 0; i < 100; i++)); do
        line="$(head -n 1 "$out" 2>/dev/null || true)"
        if [[ "$line" =~ ^fake-provider\ listening\ on\ http://127\.0\.0\.1:([0-9]+)$ ]]; then
            FAKE_PORT="${BASH_REMATCH[1]}"
            return 0
        fi
        kill -0 "$FAKE_PID" 2>/dev/null || break
        sleep 0.1
    done
    log_tail "$out.err" "fake-provider stderr"
    return 1
}

post_ok() { # post_ok URL: one small chat request must answer 200 with a chat.completion
    local body
    body="$(curl -sS --max-time 10 -o - -w '\n%{http_code}' -H 'content-type: application/json' \
        --data '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}' "$1" 2>&1)" || { say "$body"; return 1; }
    if [ "$(tail -n 1 <<<"$body")" != 200 ] || ! grep -q '"choices"' <<<"$body"; then
        say "unexpected answer from $1:"
        say "$body" | head -c 600
        return 1
    fi
}

read_kb() { # read_kb PID FIELD -> kB from /proc/PID/status, or empty
    local k v _
    [ -r "/proc/$1/status" ] || return 0
    while read -r k v _; do
        if [ "$k" = "$2:" ]; then printf '%s' "$v"; return 0; fi
    done <"/proc/$1/status" 2>/dev/null
}

cpu_ticks() { # cpu_ticks PID...: utime+stime (clock ticks) of the processes and their direct children
    local pid all=() line rest total=0 f
    for pid in "$@"; do all+=("$pid") ; all+=($(pgrep -P "$pid" 2>/dev/null || true)); done
    for pid in "${all[@]}"; do
        line="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        rest="${line##*) }"
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    printf '%s' "$total"
}
CLK_TCK="$(getconf CLK_TCK)"

mib() { awk -v kb="$1" 'BEGIN { if (kb == "" || kb < 0) print "-"; else printf "%.1f", kb / 1024 }'; }

say "ai-gateway data-plane benchmark"
say "  machine: $(nproc) CPU(s), load average $(cut -d' ' -f1-3 /proc/loadavg), open-file limit $NOFILE"
say "  binaries: $BIN"
say "  work dir: $TMP"

# --- 1. processes ------------------------------------------------------------------------------
step "starting fake-provider, nginx and ai-gateway"
start_fake "$TMP/fake.out" 0 || die "fake-provider did not start"
say "  fake-provider  pid $FAKE_PID  http://127.0.0.1:$FAKE_PORT"

NGX="$TMP/nginx"
mkdir -p "$NGX"
NGINX_PORT="$(free_port)"
user_directive=""
[ "$(id -u)" -eq 0 ] && user_directive="user $(id -un) $(id -gn);"
sed -e "s|@PREFIX@|$NGX|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@UPSTREAM@|127.0.0.1:$FAKE_PORT|g" \
    -e "s|@USER_DIRECTIVE@|$user_directive|" "$BENCH_DIR/nginx.conf.template" >"$NGX/nginx.conf"
"$NGINX" -t -q -e "$NGX/error.log" -p "$NGX" -c "$NGX/nginx.conf" >"$NGX/test.log" 2>&1 \
    || { cat "$NGX/test.log" "$NGX/error.log" 2>/dev/null; die "nginx rejected its configuration"; }
"$NGINX" -e "$NGX/error.log" -p "$NGX" -c "$NGX/nginx.conf" >"$NGX/stdout.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
for ((i = 0; i < 50; i++)); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$NGINX_PORT/" && break
    kill -0 "$NGINX_PID" 2>/dev/null || { log_tail "$NGX/error.log" "nginx error log"; die "nginx exited at startup"; }
    sleep 0.1
done
say "  nginx          pid $NGINX_PID  http://127.0.0.1:$NGINX_PORT  ($(pgrep -c -P "$NGINX_PID" || true) workers)"

MANIFESTS="$TMP/manifests"
mkdir -p "$MANIFESTS"
cat >"$MANIFESTS/backend.yaml" <<'EOF'
apiVersion: gateway.kgateway.dev/v1alpha1
kind: Backend
metadata:
  name: bench-openai
  namespace: default
spec:
  type: AI
  ai:
    llm:
      provider:
        openai:
          model: gpt-4o
          authToken:
            kind: Inline
            inline: sk-bench
---
# The same answers through Anthropic's Messages API: the gateway translates both ways.
apiVersion: gateway.kgateway.dev/v1alpha1
kind: Backend
metadata:
  name: bench-anthropic
  namespace: default
spec:
  type: AI
  ai:
    llm:
      provider:
        anthropic:
          model: claude-sonnet-4-5
          authToken:
            kind: Inline
            inline: sk-bench
EOF
cat >"$MANIFESTS/httproute.yaml" <<'EOF'
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: bench
  namespace: default
spec:
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /v1/chat/completions
    backendRefs:
    - name: bench-openai
      group: gateway.kgateway.dev
      kind: Backend
  - matches:
    - path:
        type: PathPrefix
        value: /anthropic
    backendRefs:
    - name: bench-anthropic
      group: gateway.kgateway.dev
      kind: Backend
EOF
"$GATEWAY" validate --strict "$MANIFESTS" >"$TMP/validate.log" 2>&1 \
    || { cat "$TMP/validate.log"; die "ai-gateway validate rejected the benchmark manifests"; }

GW_PORT="$(free_port)"
GW_ADMIN_PORT="$(free_port)"
while [ "$GW_ADMIN_PORT" = "$GW_PORT" ]; do GW_ADMIN_PORT="$(free_port)"; done
start_gateway() { # start_gateway FAKEPORT: sets GW_PID, waits for /readyz
    "$GATEWAY" run --manifests "$MANIFESTS" --host 127.0.0.1 --port "$GW_PORT" --admin-port "$GW_ADMIN_PORT" \
        --provider-endpoint "openai=http://127.0.0.1:$1" --provider-endpoint "anthropic=http://127.0.0.1:$1" --log-level warning --log-format text \
        --drain-timeout 3s >>"$TMP/gateway.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    local i
    for ((i = 0; i < 200; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$GW_ADMIN_PORT/readyz")" = 200 ] && return 0
        kill -0 "$GW_PID" 2>/dev/null || break
        sleep 0.1
    done
    log_tail "$TMP/gateway.log" "gateway log"
    return 1
}
start_gateway "$FAKE_PORT" || die "ai-gateway did not become ready"
GW_IDLE_KB="$(read_kb "$GW_PID" VmRSS)"
say "  ai-gateway     pid $GW_PID  http://127.0.0.1:$GW_PORT  (admin $GW_ADMIN_PORT, idle VmRSS $(mib "$GW_IDLE_KB") MiB)"

URL_DIRECT="http://127.0.0.1:$FAKE_PORT/v1/chat/completions"
URL_NGINX="http://127.0.0.1:$NGINX_PORT/v1/chat/completions"
URL_GATEWAY="http://127.0.0.1:$GW_PORT/v1/chat/completions"
URL_ANTHROPIC="http://127.0.0.1:$GW_PORT/anthropic/v1/chat/completions"
post_ok "$URL_DIRECT" || die "the fake provider does not answer a chat request"
post_ok "$URL_NGINX" || { log_tail "$NGX/error.log" "nginx error log"; die "nginx does not proxy a chat request"; }
post_ok "$URL_GATEWAY" || { log_tail "$TMP/gateway.log" "gateway log"; die "the gateway does not proxy a chat request"; }
post_ok "$URL_ANTHROPIC" || { log_tail "$TMP/gateway.log" "gateway log"; die "the gateway does not serve a chat request through Anthropic"; }

# --- 2./3. wrk ---------------------------------------------------------------------------------
WRK_ARGS=(-t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency --timeout 5s -s "$BENCH_DIR/chat.lua")
step "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency --timeout 5s -s bench/chat.lua (after a ${WARMUP}s warm-up each; non-streaming POST)"

rss_sampler() { # rss_sampler PID OUTFILE: highest VmRSS (kB) seen, every 0.2 s
    local pid="$1" out="$2" max=0 v
    while [ -r "/proc/$pid/status" ]; do
        v="$(read_kb "$pid" VmRSS)"
        if [ -n "$v" ] && [ "$v" -gt "$max" ]; then max="$v"; printf '%s\n' "$max" >"$out"; fi
        sleep 0.2
    done
}

declare -A RES
run_wrk() { # run_wrk NAME URL PID...: the PIDs are the proxy under test (for its CPU time)
    local name="$1" url="$2" out="$TMP/wrk-$1.txt" line cpu0 cpu1
    shift 2
    timeout $((WARMUP + 15)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" --timeout 5s -s "$BENCH_DIR/chat.lua" "$url" \
        >"$TMP/wrk-$name-warmup.txt" 2>&1 || { cat "$TMP/wrk-$name-warmup.txt"; die "wrk warm-up against $name failed"; }
    if [[ "$name" == gateway* ]]; then
        rss_sampler "$GW_PID" "$TMP/$name-rss-max" &
        SAMPLER=$!
    fi
    cpu0="$(cpu_ticks "$@")"
    timeout $((DURATION + 30)) wrk "${WRK_ARGS[@]}" "$url" >"$out" 2>&1 || { cat "$out"; die "wrk against $name failed"; }
    cpu1="$(cpu_ticks "$@")"
    if [ -n "$SAMPLER" ]; then
        stop_pid "$SAMPLER" 1
        SAMPLER=""
    fi
    local vars
    vars="$(python3 "$BENCH_DIR/wrk_summary.py" <"$out")" || { cat "$out"; die "could not parse wrk output for $name"; }
    while IFS='=' read -r k v; do RES["$name.$k"]="$v"; done <<<"$vars"
    RES["$name.CPU_US"]="$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v n="${RES[$name.REQUESTS]}" \
        'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')"
}

run_wrk direct "$URL_DIRECT" "$FAKE_PID"
for ((r = 1; r <= ROUNDS; r++)); do
    run_wrk "nginx$r" "$URL_NGINX" "$NGINX_PID"
    kill -0 "$NGINX_PID" 2>/dev/null || { log_tail "$NGX/error.log" "nginx error log"; die "nginx died under load"; }
    run_wrk "gateway$r" "$URL_GATEWAY" "$GW_PID"
    kill -0 "$GW_PID" 2>/dev/null || break
    run_wrk "anthropic$r" "$URL_ANTHROPIC" "$GW_PID"
    kill -0 "$GW_PID" 2>/dev/null || break
done
GW_ALIVE_AFTER_LOAD=1
kill -0 "$GW_PID" 2>/dev/null || GW_ALIVE_AFTER_LOAD=0
GW_HWM_KB="$(read_kb "$GW_PID" VmHWM)"
GW_SAMPLED_KB="$(cat "$TMP"/gateway*-rss-max 2>/dev/null | sort -n | tail -n 1 || true)"

printf '\n%-12s %12s %10s %10s %11s %9s %14s  %s\n' target "requests/s" "p50 ms" "p99 ms" requests non-2xx "CPU us/req(*)" "socket errors (conn/read/write/timeout)"
ERRORS=0
GW_ERRORS=0
NAMES=(direct)
for ((r = 1; r <= ROUNDS; r++)); do NAMES+=("nginx$r" "gateway$r" "anthropic$r"); done
for name in "${NAMES[@]}"; do
    [ -n "${RES[$name.RPS]:-}" ] || continue
    label="$name"; [[ "$name" == gateway* ]] && label="ai-gateway${name#gateway}"; [[ "$name" == anthropic* ]] && label="via-claude${name#anthropic}"
    sock="${RES[$name.SOCK_CONNECT]}/${RES[$name.SOCK_READ]}/${RES[$name.SOCK_WRITE]}/${RES[$name.SOCK_TIMEOUT]}"
    printf '%-12s %12s %10s %10s %11s %9s %14s  %s\n' "$label" "${RES[$name.RPS]}" "${RES[$name.P50_MS]}" "${RES[$name.P99_MS]}" \
        "${RES[$name.REQUESTS]}" "${RES[$name.NON2XX]}" "${RES[$name.CPU_US]}" "$sock"
    if [ "${RES[$name.NON2XX]}" != 0 ] || [ "$sock" != 0/0/0/0 ]; then
        ERRORS=1
        [[ "$name" == gateway* || "$name" == anthropic* ]] && GW_ERRORS=1
        say "  !! $label: ${RES[$name.NON2XX]} non-2xx responses, socket errors $sock"
    fi
done
say "  direct = wrk straight to the fake provider, for reference; nginxN, ai-gatewayN and via-claudeN ran one after the other"
say "  (via-claudeN: the same route through an Anthropic entry, translated both ways by the gateway)."
say "  (*) CPU time of the process under test (direct: fake provider; nginx: master+workers; ai-gateway)"
say "      per request during the measured run; less sensitive than requests/s to other load on the machine."

if [ "$GW_ALIVE_AFTER_LOAD" = 1 ]; then
    say ""
    say "gateway peak RSS (VmHWM, since start): $(mib "$GW_HWM_KB") MiB; highest VmRSS sampled during its wrk runs: $(mib "$GW_SAMPLED_KB") MiB"
else
    say ""
    say "!! the gateway process exited during or right after its wrk run"
    log_tail "$TMP/gateway.log" "gateway log"
    FAILED_TO_RUN=1
fi

RATIOS=()
for ((r = 1; r <= ROUNDS; r++)); do
    [ -n "${RES[gateway$r.RPS]:-}" ] && [ -n "${RES[nginx$r.RPS]:-}" ] || continue
    RATIOS+=("$(awk -v g="${RES[gateway$r.RPS]}" -v n="${RES[nginx$r.RPS]}" 'BEGIN { printf "%.3f", (n > 0 ? g / n : 0) }')")
done
RATIO="$(printf '%s\n' "${RATIOS[@]:-0}" | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "0.000"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
VERDICT="$(awk -v r="$RATIO" -v req="$RATIO_REQUIRED" 'BEGIN { print (r >= req ? "PASS" : "FAIL") }')"
if [ "$GW_ERRORS" = 1 ]; then VERDICT="FAIL (the gateway runs had errors)"; fi
THROUGHPUT_LINE="$(printf 'gateway rps / nginx rps = %s (median of rounds: %s)   (required >= %s)   %s' \
    "$RATIO" "${RATIOS[*]:-none}" "$RATIO_REQUIRED" "$VERDICT")"
say "$THROUGHPUT_LINE"
CPU_RATIOS=()
for ((r = 1; r <= ROUNDS; r++)); do
    g="${RES[gateway$r.CPU_US]:-}"; a="${RES[anthropic$r.CPU_US]:-}"
    [[ "$g" =~ ^[0-9.]+$ && "$a" =~ ^[0-9.]+$ ]] || continue
    CPU_RATIOS+=("$(awk -v g="$g" -v a="$a" 'BEGIN { printf "%.2f", (g > 0 ? a / g : 0) }')")
done
CPU_RATIO="$(printf '%s\n' "${CPU_RATIOS[@]:-0}" | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "0.00"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
CPU_VERDICT="$(awk -v r="$CPU_RATIO" 'BEGIN { print (r > 0 && r <= 1.3 ? "PASS" : "FAIL") }')"
say "$(printf 'gateway CPU per request, Anthropic route / OpenAI route = %s (median of rounds: %s)   (required <= 1.30)   %s' \
    "$CPU_RATIO" "${CPU_RATIOS[*]:-none}" "$CPU_VERDICT")"

if [ "$GW_ALIVE_AFTER_LOAD" = 0 ]; then
    die "the gateway crashed under load; skipping the stream test"
fi

# --- 5. 1,000 concurrent streams --------------------------------------------------------------
step "$STREAMS concurrent streams through the gateway (fake provider: --tokens $STREAM_TOKENS --token-interval-ms $STREAM_INTERVAL_MS)"
# Restart the fake provider on the same port with a token interval; the gateway (same process as
# above, so its memory includes whatever the load test left behind) keeps pointing at it.
stop_pid "$FAKE_PID" 5
OLD_FAKE_PORT="$FAKE_PORT"
if ! start_fake "$TMP/fake-stream.out" "$OLD_FAKE_PORT" --tokens "$STREAM_TOKENS" --token-interval-ms "$STREAM_INTERVAL_MS"; then
    # The old port could not be bound again: use a new one and restart the gateway to point at it.
    say "  note: could not rebind port $OLD_FAKE_PORT; restarting fake provider and gateway on new ports"
    stop_pid "$FAKE_PID" 2
    start_fake "$TMP/fake-stream.out" 0 --tokens "$STREAM_TOKENS" --token-interval-ms "$STREAM_INTERVAL_MS" \
        || die "could not restart the fake provider"
    stop_pid "$GW_PID" 5
    start_gateway "$FAKE_PORT" || die "ai-gateway did not become ready again"
fi
say "  fake-provider restarted: pid $FAKE_PID on port $FAKE_PORT; each stream lasts about $((STREAM_TOKENS * STREAM_INTERVAL_MS / 1000)) s"
sleep 0.5
post_ok "$URL_GATEWAY" || { log_tail "$TMP/gateway.log" "gateway log"; die "the gateway does not proxy a chat request after the provider restart"; }
say "  gateway VmRSS before the streams: $(mib "$(read_kb "$GW_PID" VmRSS)") MiB"

STREAM_DEADLINE=$(( STREAM_TOKENS * STREAM_INTERVAL_MS / 1000 * 2 / 3 ))
[ "$STREAM_DEADLINE" -lt 5 ] && STREAM_DEADLINE=5
timeout 120 python3 "$BENCH_DIR/stream_hold.py" --port "$GW_PORT" --pid "$GW_PID" --streams "$STREAMS" \
    --deadline "$STREAM_DEADLINE" --hold 2 >"$TMP/streams.out" || {
    rc=$?
    cat "$TMP/streams.out"
    die "the stream client failed (exit $rc)"
}
line="$(grep '^STREAMS ' "$TMP/streams.out" | tail -n 1)"
[ -n "$line" ] || { cat "$TMP/streams.out"; die "the stream client printed no result"; }
declare -A S
for kv in ${line#STREAMS }; do S["${kv%%=*}"]="${kv#*=}"; done

STREAM_RSS_MIB="$(mib "${S[rss_kb]}")"
STREAM_MAX_MIB="$(mib "${S[rss_hold_max_kb]}")"
STREAM_VERDICT="$(awk -v kb="${S[rss_hold_max_kb]}" -v lim="$STREAM_RSS_LIMIT_MB" 'BEGIN { print (kb > 0 && kb / 1024 < lim ? "PASS" : "FAIL") }')"
STREAM_OK=1
if [ "${S[first_bytes]}" != "$STREAMS" ] || [ "${S[failed]}" != 0 ] || [ "${S[open_at_measure]}" != "$STREAMS" ]; then
    STREAM_OK=0
    STREAM_VERDICT="FAIL (only ${S[open_at_measure]} of $STREAMS streams open)"
fi
say ""
say "streams requested ${S[requested]}, connected ${S[connected]}, first SSE bytes ${S[first_bytes]} (all settled in ${S[settle_s]} s; time to first bytes p50 ${S[ttfb_p50_s]} s, p99 ${S[ttfb_p99_s]} s)"
say "streams failed ${S[failed]}, ended before we closed them ${S[ended_early]}, open at measurement ${S[open_at_measure]}, still open after a 2 s hold ${S[open_after_hold]}"
say "gateway with the streams open: VmRSS $STREAM_RSS_MIB MiB (max over a 2 s hold $STREAM_MAX_MIB MiB), VmHWM $(mib "${S[hwm_kb]}") MiB, ${S[threads]} threads, ${S[fds]} fds"
say "  = $(mib $(( S[rss_hold_max_kb] - S[rss_before_kb] ))) MiB more than the $(mib "${S[rss_before_kb]}") MiB just before the streams (about $(( (S[rss_hold_max_kb] - S[rss_before_kb]) / STREAMS )) kB per stream);"
say "    the gateway is the same process as in the wrk runs, so the RSS includes what they left (idle at start: $(mib "$GW_IDLE_KB") MiB)"
STREAM_LINE="$(printf 'gateway RSS with %s concurrent streams = %s MiB   (required < %s MB)   %s' "$STREAMS" "$STREAM_MAX_MIB" "$STREAM_RSS_LIMIT_MB" "$STREAM_VERDICT")"
say "$STREAM_LINE"
if [ "${S[alive_after_close]}" = 1 ]; then
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$GW_ADMIN_PORT/readyz" || true)"
    say "after closing all streams: gateway alive, VmRSS $(mib "${S[rss_after_close_kb]}") MiB, ${S[fds_after_close]} fds, /readyz $code"
else
    say "!! the gateway process is gone after the stream test"
    log_tail "$TMP/gateway.log" "gateway log"
    FAILED_TO_RUN=1
fi

# --- summary -----------------------------------------------------------------------------------
step "summary"
say "$THROUGHPUT_LINE"
CPU_RATIOS=()
for ((r = 1; r <= ROUNDS; r++)); do
    g="${RES[gateway$r.CPU_US]:-}"; a="${RES[anthropic$r.CPU_US]:-}"
    [[ "$g" =~ ^[0-9.]+$ && "$a" =~ ^[0-9.]+$ ]] || continue
    CPU_RATIOS+=("$(awk -v g="$g" -v a="$a" 'BEGIN { printf "%.2f", (g > 0 ? a / g : 0) }')")
done
CPU_RATIO="$(printf '%s\n' "${CPU_RATIOS[@]:-0}" | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "0.00"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
CPU_VERDICT="$(awk -v r="$CPU_RATIO" 'BEGIN { print (r > 0 && r <= 1.3 ? "PASS" : "FAIL") }')"
say "$(printf 'gateway CPU per request, Anthropic route / OpenAI route = %s (median of rounds: %s)   (required <= 1.30)   %s' \
    "$CPU_RATIO" "${CPU_RATIOS[*]:-none}" "$CPU_VERDICT")"
say "gateway peak RSS under wrk load: $(mib "$GW_HWM_KB") MiB (VmHWM)"
say "$STREAM_LINE"
warnings="$(grep -ciE 'warning|error|critical' "$TMP/gateway.log" 2>/dev/null || true)"
if [ "${warnings:-0}" -gt 0 ]; then
    say "gateway logged $warnings warning/error line(s); first ones:"
    grep -iE 'warning|error|critical' "$TMP/gateway.log" | head -n 5 | sed 's/^/    /'
fi
[ "$ERRORS" = 1 ] && say "note: some wrk runs reported errors (see the table above)"
[ "$STREAM_OK" = 0 ] && say "note: not every stream was open when the RSS was read (see the [streams] lines above)"
[ "$FAILED_TO_RUN" = 0 ] || exit 1
exit 0
