#!/usr/bin/env bash
# `make run`: the gateway in standalone mode on the guide's manifests (examples/model-failover) and
# on examples/cross-provider, in front of the bundled fake provider, which speaks every provider's
# native API and whose first models are failing (gpt-4o 503, Claude 529, Gemini 429). Works offline.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(swift build --show-bin-path)"
PROVIDER_PORT="${PROVIDER_PORT:-9000}"
PORT="${PORT:-8080}"
ADMIN_PORT="${ADMIN_PORT:-9091}"

cleanup() { kill "${PROVIDER_PID:-}" "${GATEWAY_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$BIN/fake-provider" --host 127.0.0.1 --port "$PROVIDER_PORT" --fault 'gpt-4o=status=503' \
    --fault 'claude-3-5-sonnet-20241022=status=529' --fault 'gemini-2.0-flash=status=429,retry-after=30' \
    --token-interval-ms 50 --require-key sk-demo-not-a-real-key > /dev/null &
PROVIDER_PID=$!

cat <<MSG

  ai-gateway: standalone mode, manifests from examples/model-failover and examples/cross-provider
  fake provider on 127.0.0.1:$PROVIDER_PORT (every provider's API): gpt-4o answers 503,
  claude-3-5-sonnet-20241022 529 (overloaded), gemini-2.0-flash 429 (throttled); the rest are healthy

  Try, in another terminal (the guide's request):

    curl -v "localhost:$PORT/model" -H content-type:application/json -d '{
      "messages": [{"role": "user", "content": "What is kubernetes?"}]}'

  The answer comes from gpt-4.0-turbo; the headers x-aigw-model and x-aigw-attempts say what happened.

  Across providers (OpenAI, then Anthropic, Gemini, Bedrock, Azure OpenAI, Vertex AI):

    curl -i "localhost:$PORT/cross" -H content-type:application/json -d '{
      "messages": [{"role": "user", "content": "What is kubernetes?"}]}'

  The answer comes from Bedrock, in the OpenAI shape.
  Heal gpt-4o:  curl -X PUT localhost:$PROVIDER_PORT/_fake/faults/gpt-4o -d ok
  Metrics:      curl localhost:$ADMIN_PORT/metrics
  Ctrl-C stops both.

MSG

endpoints=()
for p in openai azureopenai anthropic gemini vertexai bedrock; do
    endpoints+=(--provider-endpoint "$p=http://127.0.0.1:$PROVIDER_PORT")
done
"$BIN/ai-gateway" run --manifests examples/model-failover --manifests examples/cross-provider --port "$PORT" \
    --admin-port "$ADMIN_PORT" "${endpoints[@]}" --log-format text &
GATEWAY_PID=$!
wait "$GATEWAY_PID"
