-- wrk script for `make bench`: every request is the same small chat completion, streamed (SSE),
-- with the usage chunk asked for.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}'
