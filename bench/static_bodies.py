#!/usr/bin/env python3
"""Writes the static upstream's fixed answers for `make bench` into a directory.

  static_bodies.py DIR [--events 200]

DIR/chat.json: one non-streamed OpenAI chat completion (about 350 bytes).
DIR/stream.sse: one streamed answer of --events SSE events in all: a role chunk, events-3 content
chunks of one token each, a finish chunk and `data: [DONE]` (about 34 kB for 200 events).
DIR/request.json, DIR/request-stream.json: the request bodies the load clients send.
The static nginx serves the two answers as files to any POST, so an answer costs it almost nothing.
"""
import argparse
import json
import os
import sys


def chunk(delta: dict, finish) -> str:
    return "data: " + json.dumps(
        {"id": "chatcmpl-static", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o",
         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]},
        separators=(",", ":")) + "\n\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--events", type=int, default=200, help="SSE events per streamed answer, [DONE] included (at least 4)")
    args = ap.parse_args()
    if args.events < 4:
        print("static_bodies: --events must be at least 4", file=sys.stderr)
        return 2
    os.makedirs(args.dir, exist_ok=True)
    completion = {
        "id": "chatcmpl-static", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
        "system_fingerprint": "fp_static",
    }
    with open(os.path.join(args.dir, "chat.json"), "w") as f:
        f.write(json.dumps(completion, separators=(",", ":")))
    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": f" tok{i}"}, None) for i in range(args.events - 3)]
    events += [chunk({}, "stop"), "data: [DONE]\n\n"]
    with open(os.path.join(args.dir, "stream.sse"), "w") as f:
        f.write("".join(events))
    messages = [{"role": "user", "content": "hi"}]
    with open(os.path.join(args.dir, "request.json"), "w") as f:
        f.write(json.dumps({"model": "gpt-4o", "messages": messages}, separators=(",", ":")))
    with open(os.path.join(args.dir, "request-stream.json"), "w") as f:
        f.write(json.dumps({"model": "gpt-4o", "messages": messages, "stream": True}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
