"""CEL: the `x-kubernetes-validations` rules of this repository's CRDs, recognised by
their exact text. A rule not listed here is logged once and treated as satisfied; the
tests in tests/kube fail if a CRD gains a rule this table does not know."""

from __future__ import annotations

from typing import Any, Callable

from .common import log


PROVIDER_KEYS = ("openai", "azureopenai", "anthropic", "gemini", "vertexai", "bedrock")


def _count_present(obj: dict, keys) -> int:
    return sum(1 for k in keys if k in obj)


CEL_RULES: dict[str, Callable[[Any], bool]] = {
    # Backend spec: each of ai/aws/static belongs to its type.
    "self.type != 'AI' || has(self.ai)": lambda s: s.get("type") != "AI" or "ai" in s,
    "self.type == 'AI' || !has(self.ai)": lambda s: s.get("type") == "AI" or "ai" not in s,
    "self.type == 'AWS' || !has(self.aws)": lambda s: s.get("type") == "AWS" or "aws" not in s,
    "self.type == 'Static' || !has(self.static)": lambda s: s.get("type") == "Static" or "static" not in s,
    # Backend spec.ai: exactly one shape.
    "[has(self.llm), has(self.multipool), has(self.priorityGroups)].filter(x, x).size() == 1":
        lambda s: _count_present(s, ("llm", "multipool", "priorityGroups")) == 1,
    # A provider entry (older `provider:` wrapper or later flattened shape).
    "[has(self.provider), has(self.openai), has(self.azureopenai), has(self.anthropic), "
    "has(self.gemini), has(self.vertexai), has(self.bedrock)].filter(x, x).size() == 1":
        lambda s: _count_present(s, ("provider",) + PROVIDER_KEYS) == 1,
    "[has(self.openai), has(self.azureopenai), has(self.anthropic), has(self.gemini), "
    "has(self.vertexai), has(self.bedrock)].filter(x, x).size() == 1":
        lambda s: _count_present(s, PROVIDER_KEYS) == 1,
    "has(self.host) == has(self.port)": lambda s: ("host" in s) == ("port" in s),
    "!has(self.hostOverride) || (!has(self.host) && !has(self.port))":
        lambda s: "hostOverride" not in s or ("host" not in s and "port" not in s),
    "!(has(self.path) && has(self.pathOverride))": lambda s: not ("path" in s and "pathOverride" in s),
    "!(has(self.authHeader) && has(self.authHeaderOverride))":
        lambda s: not ("authHeader" in s and "authHeaderOverride" in s),
    "has(self.prefix) || has(self.headerName)": lambda s: "prefix" in s or "headerName" in s,
    # authToken: the kind names the field that carries the token.
    "self.kind != 'Inline' || has(self.inline)": lambda s: s.get("kind") != "Inline" or "inline" in s,
    "self.kind != 'SecretRef' || has(self.secretRef)":
        lambda s: s.get("kind") != "SecretRef" or "secretRef" in s,
    "!(has(self.inline) && has(self.secretRef))": lambda s: not ("inline" in s and "secretRef" in s),
    # Gateway API subset (HTTPRoute).
    "self.type in ['Exact', 'PathPrefix'] ? self.value.startsWith('/') : true":
        lambda s: s.get("type") not in ("Exact", "PathPrefix") or str(s.get("value", "")).startswith("/"),
    "self.type != 'URLRewrite' || has(self.urlRewrite)":
        lambda s: s.get("type") != "URLRewrite" or "urlRewrite" in s,
    "self.type != 'RequestHeaderModifier' || has(self.requestHeaderModifier)":
        lambda s: s.get("type") != "RequestHeaderModifier" or "requestHeaderModifier" in s,
    "self.type != 'ResponseHeaderModifier' || has(self.responseHeaderModifier)":
        lambda s: s.get("type") != "ResponseHeaderModifier" or "responseHeaderModifier" in s,
    "self.type != 'ReplaceFullPath' || has(self.replaceFullPath)":
        lambda s: s.get("type") != "ReplaceFullPath" or "replaceFullPath" in s,
    "self.type != 'ReplacePrefixMatch' || has(self.replacePrefixMatch)":
        lambda s: s.get("type") != "ReplacePrefixMatch" or "replacePrefixMatch" in s,
}


_unknown_rules_logged: set = set()


def cel_rule(text: str) -> Callable[[Any], bool] | None:
    """The check of a rule; None (logged once) for a rule the fake does not know."""
    check = CEL_RULES.get(text)
    if check is None and text not in _unknown_rules_logged:
        _unknown_rules_logged.add(text)
        log(f"CEL rule not implemented by the fake, treated as satisfied: {text}")
    return check
