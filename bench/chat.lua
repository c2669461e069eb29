-- wrk script for `make bench`: every request is the same small, non-streaming chat completion.
wrk.method = "POST"
-- The path is the URL's (the benchmark targets several routes).
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
