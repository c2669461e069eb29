"""`ai-gateway validate` on Backends that would send the provider what they should not: a field
that ends the request line (an error naming the field) and a key over plaintext (a warning)."""
import subprocess

from conftest import bin_dir

BACKEND = """apiVersion: gateway.kgateway.dev/v1alpha1
kind: Backend
metadata: {name: b, namespace: ns}
spec:
  type: AI
  ai:
    llm:
      provider:
        openai: {model: gpt-4o, authToken: {kind: Inline, inline: sk-live-never-printed}}
"""


def validate(tmp_path, yaml: str, *flags: str) -> subprocess.CompletedProcess:
    path = tmp_path / "backend.yaml"
    path.write_text(yaml)
    return subprocess.run([str(bin_dir() / "ai-gateway"), "validate", *flags, str(path)],
                          capture_output=True, text=True, timeout=60)


def test_an_injected_path_and_host_fail_validation_naming_each_field(tmp_path):
    result = validate(tmp_path, BACKEND
                      + '      hostOverride: {host: "llm.internal\\r\\nX-Injected: yes", port: 443}\n'
                      + '      pathOverride: {fullPath: "/v1/chat HTTP/1.1\\r\\nX-Injected: yes\\r\\n"}\n')
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines == [
        f"error: {tmp_path / 'backend.yaml'} Backend ns/b: spec.ai.llm.hostOverride.host: must be a host name or IP address: "
        'control characters (CR, LF, NUL, ...) are not allowed, found "llm.internal\\r\\nX-Injected: yes"',
        f"error: {tmp_path / 'backend.yaml'} Backend ns/b: spec.ai.llm.pathOverride.fullPath: must be a URL path: "
        'spaces are not allowed (write %20), found "/v1/chat HTTP/1.1\\r\\nX-Injected: yes\\r\\n"',
    ], result.stdout


def test_a_key_in_clear_is_a_warning_and_an_error_with_strict(tmp_path):
    yaml = BACKEND + "      hostOverride: {host: llm.internal, port: 8080}\n"
    result = validate(tmp_path, yaml)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("warning: Backend ns/b: spec.ai.llm (model gpt-4o) sends its key in clear (plaintext HTTP) to "
            "llm.internal:8080, which is not loopback: use port 443 (TLS)") in result.stdout.splitlines()
    assert "sk-live-never-printed" not in result.stdout + result.stderr
    assert validate(tmp_path, yaml, "--strict").returncode == 1
    # TLS, or plaintext to this machine: nothing to say.
    for override in ("{host: llm.internal, port: 443}", "{host: 127.0.0.1, port: 8080}"):
        quiet = validate(tmp_path, BACKEND + f"      hostOverride: {override}\n")
        assert quiet.returncode == 0 and "warning" not in quiet.stdout, quiet.stdout
