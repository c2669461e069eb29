"""The gateway binary's transport: HTTPS to a provider (private CA), pipelined client requests,
and a graceful drain on SIGTERM. Real processes, real sockets on loopback."""
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT, Stack, bin_dir, free_port

BODY = json.dumps({"messages": [{"role": "user", "content": "What is kubernetes?"}]})


def load_fake_apiserver():
    spec = importlib.util.spec_from_file_location("fake_apiserver", ROOT / "testing" / "fake-apiserver" / "fake_apiserver.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def certs(tmp_path):
    ca, crt, key = load_fake_apiserver().make_certs(str(tmp_path))
    return ca, crt, key


def test_https_provider_verified_against_a_private_ca(tmp_path, certs):
    ca, crt, key = certs
    g = Stack(tmp_path, provider_args=["--tls-cert", crt, "--tls-key", key], gateway_args=["--provider-ca-file", ca], endpoint_host="localhost")
    try:
        for _ in range(3):  # the second and third reuse the pooled TLS connection
            status, headers, body = g.post(BODY)
            assert status == 200, body
            assert headers["x-aigw-model"] == "gpt-4o"
            assert json.loads(body)["choices"][0]["message"]["content"].startswith("Kubernetes")
    finally:
        g.stop()


def test_https_provider_with_an_untrusted_certificate_is_refused(tmp_path, certs):
    ca, crt, key = certs
    # No --provider-ca-file: the certificate does not chain to the system store.
    g = Stack(tmp_path, provider_args=["--tls-cert", crt, "--tls-key", key], endpoint_host="localhost")
    try:
        status, headers, body = g.post(BODY)
        assert status == 502, body
        error = json.loads(body)["error"]
        assert [a["outcome"] for a in error["attempts"]][:2] == ["connect_error", "connect_error"]
        assert headers["x-aigw-attempts"].startswith("openai/gpt-4o=connect_error,openai/gpt-4o=connect_error")
    finally:
        g.stop()


def test_an_unreadable_provider_ca_file_stops_the_gateway_at_start(tmp_path):
    out = subprocess.run(
        [str(bin_dir() / "ai-gateway"), "run", "--manifests", str(ROOT / "examples" / "model-failover"),
         "--port", str(free_port()), "--admin-port", str(free_port()), "--provider-ca-file", str(tmp_path / "missing.pem")],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "--provider-ca-file" in out.stderr


def read_responses(sock, count, timeout=20):
    """Reads `count` complete HTTP/1.1 responses with Content-Length; returns (status, headers) in order."""
    sock.settimeout(timeout)
    data, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(out)} responses"
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        length = int(headers["content-length"])
        while len(data) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed mid-body"
            data += chunk
        data = data[length:]
        out.append((int(lines[0].split()[1]), headers))
    return out


def test_pipelined_requests_are_answered_in_order(tmp_path):
    g = Stack(tmp_path)
    try:
        body = BODY.encode()
        requests = b"".join(
            b"POST /model HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            + f"x-request-id: pipelined-{i}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body
            for i in range(5))
        # One request to an unknown route in the middle: its 404 keeps its place in the order.
        requests += b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nx-request-id: pipelined-404\r\n\r\n"
        with socket.create_connection(("127.0.0.1", g.port)) as s:
            s.sendall(requests)
            responses = read_responses(s, 6)
        assert [r[1]["x-request-id"] for r in responses] == [f"pipelined-{i}" for i in range(5)] + ["pipelined-404"]
        assert [r[0] for r in responses] == [200] * 5 + [404]
    finally:
        g.stop()


def test_sigterm_lets_the_stream_in_flight_finish_and_refuses_new_connections(tmp_path):
    # 12 tokens 150 ms apart: the stream lasts about 1.8 s.
    g = Stack(tmp_path, provider_args=["--token-interval-ms", "150"])
    try:
        stream_body = json.dumps({"stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
        s = socket.create_connection(("127.0.0.1", g.port))
        s.sendall(b"POST /model HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                  + f"content-length: {len(stream_body)}\r\n\r\n".encode() + stream_body)
        s.settimeout(20)
        received = s.recv(65536)
        assert received.startswith(b"HTTP/1.1 200"), received[:200]
        # A keep-alive connection with nothing in flight (one exchange first: it is surely accepted).
        idle = socket.create_connection(("127.0.0.1", g.port))
        body = BODY.encode()
        idle.sendall(b"POST /model HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                     + f"content-length: {len(body)}\r\n\r\n".encode() + body)
        assert read_responses(idle, 1)[0][0] == 200
        g.gateway.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
        s.close()
        assert b"data: [DONE]" in received, "the stream in flight ran to its end"
        assert received.endswith(b"\r\n0\r\n\r\n"), "and ended cleanly (the last chunk)"
        idle.settimeout(10)
        assert idle.recv(1) == b"", "the idle connection was closed"
        assert g.gateway.wait(timeout=20) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", g.port), timeout=2).close()
    finally:
        g.stop()
