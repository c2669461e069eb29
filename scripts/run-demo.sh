#!/usr/bin/env bash
# `make run`: the gateway in standalone mode on the guide's manifests (examples/model-failover),
# in front of the bundled fake provider whose first model (gpt-4o) is failing. Works offline.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(swift build --show-bin-path)"
PROVIDER_PORT="${PROVIDER_PORT:-9000}"
PORT="${PORT:-8080}"
ADMIN_PORT="${ADMIN_PORT:-9091}"

cleanup() { kill "${PROVIDER_PID:-}" "${GATEWAY_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$BIN/fake-provider" --host 127.0.0.1 --port "$PROVIDER_PORT" --fault 'gpt-4o=status=503' --token-interval-ms 50 \
    --require-key sk-demo-not-a-real-key > /dev/null &
PROVIDER_PID=$!

cat <<MSG

  ai-gateway: standalone mode, manifests from examples/model-failover
  fake provider on 127.0.0.1:$PROVIDER_PORT: gpt-4o answers 503, gpt-4.0-turbo and gpt-3.5-turbo are healthy

  Try, in another terminal (the guide's request):

    curl -v "localhost:$PORT/model" -H content-type:application/json -d '{
      "messages": [{"role": "user", "content": "What is kubernetes?"}]}'

  The answer comes from gpt-4.0-turbo; the headers x-aigw-model and x-aigw-attempts say what happened.
  Heal gpt-4o:  curl -X PUT localhost:$PROVIDER_PORT/_fake/faults/gpt-4o -d ok
  Metrics:      curl localhost:$ADMIN_PORT/metrics
  Ctrl-C stops both.

MSG

"$BIN/ai-gateway" run --manifests examples/model-failover --port "$PORT" --admin-port "$ADMIN_PORT" \
    --provider-endpoint "openai=http://127.0.0.1:$PROVIDER_PORT" --log-format text &
GATEWAY_PID=$!
wait "$GATEWAY_PID"
