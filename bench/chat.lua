-- wrk script for `make bench`: every request is the same small, non-streaming chat completion.
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
