#!/usr/bin/env python3
"""A fake Kubernetes API server for the project's tests.

It speaks enough of the real wire protocol that the real `kubectl` (1.32) and the
project's Swift client work against it unchanged:

* discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`) in the legacy
  format (clients that ask for aggregated discovery get the legacy content type
  and fall back), and OpenAPI v3 (`/openapi/v3`, `/openapi/v3/apis/<g>/<v>`) with
  the PATCH operations kubectl inspects to learn that the server does field
  validation. OpenAPI v2 answers 404 (kubectl only uses it as a fallback);
* generic storage of any kind, namespaced or cluster-scoped: create, get, list
  (label/field selectors, limit/continue paging, consistent snapshots), update
  (resourceVersion preconditions), patch (JSON merge, strategic merge, JSON patch,
  a simplified server-side apply), delete (finalizers, collections), `/status`
  subresources with the real generation/status rules;
* CustomResourceDefinitions: registering one serves its kind; custom resources are
  pruned, defaulted and validated against the structural schema, including the
  `x-kubernetes-validations` CEL rules this repository's CRDs use (recognised by
  their exact text, see CEL_RULES);
* watches with resourceVersion replay, bookmarks, label/field filtering,
  `sendInitialEvents`, 410 Expired after compaction, and server-side timeouts;
* Table output for `kubectl get` (printer columns);
* a fault-injection API under `/_fake/` (no authentication).

Gateway API kinds are NOT built in: apply `crds/` first, as on a real cluster.

Only the standard library and PyYAML are needed; TLS material comes from the
`cryptography` package when present, else from the `openssl` command.

Run:  python3 fake_apiserver.py --port 0 --tls --token T --state-dir DIR \
          [--kubeconfig-out PATH]
It prints `fake-apiserver listening on https://127.0.0.1:PORT` once ready.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import copy
import datetime
import hashlib
import http.server
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.8",
    "compiler": "gc",
    "platform": "linux/amd64",
}

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_ANNOTATIONS_BYTES = 256 * 1024
PUBLIC_PATHS = {"/version", "/healthz", "/livez", "/readyz"}


# --------------------------------------------------------------------------------------
# Errors: every failure leaves the server as a meta/v1 Status object.
# --------------------------------------------------------------------------------------

REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
    415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
    500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}


class ApiError(Exception):
    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict:
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            s["details"] = self.details
        return s


@dataclass
class FieldError:
    """One field.Error: `<field>: <body>`; `body` is also the cause's message."""
    field: str
    reason: str  # FieldValueRequired, FieldValueInvalid, ...
    body: str

    def __str__(self) -> str:
        return f"{self.field}: {self.body}" if self.field else self.body


def fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(json_type(v))


def json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------------------
# Resource types: built-ins plus whatever CRDs register.
# --------------------------------------------------------------------------------------

@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: list = field(default_factory=list)
    categories: list = field(default_factory=list)
    status: bool = False          # has a /status subresource
    schema: dict | None = None    # structural openAPIV3Schema (custom resources only)
    columns: list | None = None   # printer columns after Name (jsonPath based); None: just Age
    fields: tuple | None = None   # allowed top-level fields of a built-in kind
    crd: str | None = None        # name of the defining CRD

    def __post_init__(self):
        self.singular = self.singular or self.kind.lower()
        if self.columns is None:
            self.columns = [AGE_COLUMN]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gr(self) -> tuple:
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:  # "backends.gateway.kgateway.dev" / "secrets"
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:  # "Backend.gateway.kgateway.dev" / "Secret"
        return f"{self.kind}.{self.group}" if self.group else self.kind


def _col(name, path, type_="string", priority=0, fmt=""):
    return {"name": name, "type": type_, "jsonPath": path, "priority": priority, "format": fmt,
            "description": ""}


AGE_COLUMN = _col("Age", ".metadata.creationTimestamp", "date")
_WORKLOAD = ("spec", "status")
BUILTINS = [
    ResourceType("", "v1", "namespaces", "Namespace", False, short_names=["ns"], status=True,
                 columns=[_col("Status", ".status.phase"), AGE_COLUMN], fields=_WORKLOAD),
    ResourceType("", "v1", "nodes", "Node", False, short_names=["no"], status=True, fields=_WORKLOAD),
    ResourceType("", "v1", "pods", "Pod", short_names=["po"], categories=["all"], status=True,
                 fields=_WORKLOAD),
    ResourceType("", "v1", "services", "Service", short_names=["svc"], categories=["all"], status=True,
                 columns=[_col("Type", ".spec.type"), _col("Cluster-IP", ".spec.clusterIP"), AGE_COLUMN],
                 fields=_WORKLOAD),
    ResourceType("", "v1", "endpoints", "Endpoints", short_names=["ep"], singular="endpoints",
                 fields=("subsets",)),
    ResourceType("", "v1", "secrets", "Secret", columns=[_col("Type", ".type"), AGE_COLUMN],
                 fields=("data", "stringData", "type", "immutable")),
    ResourceType("", "v1", "configmaps", "ConfigMap", short_names=["cm"],
                 fields=("data", "binaryData", "immutable")),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short_names=["sa"],
                 fields=("secrets", "imagePullSecrets", "automountServiceAccountToken")),
    ResourceType("", "v1", "events", "Event", short_names=["ev"],
                 fields=("involvedObject", "reason", "message", "source", "firstTimestamp",
                         "lastTimestamp", "count", "type", "eventTime", "series", "action",
                         "related", "reportingComponent", "reportingInstance")),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=["pvc"],
                 status=True, fields=_WORKLOAD),
    ResourceType("apps", "v1", "deployments", "Deployment", short_names=["deploy"], categories=["all"],
                 status=True, columns=[_col("Replicas", ".spec.replicas", "integer"), AGE_COLUMN], fields=_WORKLOAD),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", short_names=["sts"], categories=["all"],
                 status=True, fields=_WORKLOAD),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", short_names=["ds"], categories=["all"],
                 status=True, fields=_WORKLOAD),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", short_names=["rs"], categories=["all"],
                 status=True, fields=_WORKLOAD),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False,
                 fields=("rules", "aggregationRule")),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False,
                 fields=("subjects", "roleRef")),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", fields=("rules",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding",
                 fields=("subjects", "roleRef")),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short_names=["pdb"],
                 status=True, fields=_WORKLOAD),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", fields=("spec",)),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice",
                 fields=("addressType", "endpoints", "ports")),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
                 False, short_names=["crd", "crds"], status=True,
                 columns=[_col("Created At", ".metadata.creationTimestamp")], fields=_WORKLOAD),
]
BUILTIN_GROUP_ORDER = ["", "apps", "events.k8s.io", "rbac.authorization.k8s.io", "policy",
                       "coordination.k8s.io", "discovery.k8s.io", "apiextensions.k8s.io"]


def version_priority(v: str) -> tuple:
    """Kubernetes version ordering: v1 > v1beta2 > v1beta1 > v1alpha1 > anything else."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (0, 0, 0, v)
    level = {None: 3, "beta": 2, "alpha": 1}[m.group(2)]
    return (level, int(m.group(1)), int(m.group(3) or 0), "")


# --------------------------------------------------------------------------------------
# CEL: the rules of this repository's CRDs, recognised by their exact text.
# A rule not listed here is logged once and treated as satisfied.
# --------------------------------------------------------------------------------------

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


def _log(msg: str) -> None:
    print(f"fake-apiserver: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Structural schemas: pruning, defaulting and validation of custom resources.
# --------------------------------------------------------------------------------------

def prune(node: Any, schema: dict | None, path: str, unknown: list, root: bool = False) -> Any:
    """Drops fields the schema does not declare (recording their paths) and nulls of
    non-nullable fields, as the apiserver does before defaulting."""
    if schema is None:
        return node
    if isinstance(node, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        embedded = schema.get("x-kubernetes-embedded-resource")
        for key in list(node):
            value = node[key]
            if (root or embedded) and key in ("apiVersion", "kind", "metadata"):
                continue
            if key in props:
                sub = props[key]
            elif isinstance(addl, dict):
                sub = addl
            elif addl is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                continue
            else:
                unknown.append(join_path(path, key))
                del node[key]
                continue
            if value is None and not sub.get("nullable"):
                del node[key]
                continue
            node[key] = prune(value, sub, join_path(path, key) if key in props else f"{path}[{key}]",
                              unknown)
    elif isinstance(node, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(node):
            node[i] = prune(item, schema["items"], f"{path}[{i}]", unknown)
    return node


def apply_defaults(node: Any, schema: dict | None) -> None:
    if schema is None:
        return
    if isinstance(node, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if key not in node and "default" in sub:
                node[key] = copy.deepcopy(sub["default"])
        addl = schema.get("additionalProperties")
        for key, value in node.items():
            sub = props.get(key, addl if isinstance(addl, dict) else None)
            apply_defaults(value, sub)
    elif isinstance(node, list) and isinstance(schema.get("items"), dict):
        for item in node:
            apply_defaults(item, schema["items"])


def _type_ok(value: Any, t: str) -> bool:
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def validate(node: Any, schema: dict, path: str, errs: list, root: bool = False) -> None:
    """Value validation per the OpenAPI v3 subset CRDs use, with kube-style messages."""
    if node is None:
        return
    inv = lambda body: errs.append(FieldError(path, "FieldValueInvalid", f"Invalid value: {fmt_value(node)}: {body}"))
    t = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(node, str) or _type_ok(node, "integer")):
            errs.append(FieldError(path, "FieldValueTypeInvalid",
                                   f'Invalid value: "{json_type(node)}": {path} in body must be of type int-or-string: "{json_type(node)}"'))
            return
    elif t and not _type_ok(node, t):
        errs.append(FieldError(path, "FieldValueTypeInvalid",
                               f'Invalid value: "{json_type(node)}": {path} in body must be of type {t}: "{json_type(node)}"'))
        return
    if "enum" in schema and node not in schema["enum"]:
        allowed = ", ".join(fmt_value(e) for e in schema["enum"])
        errs.append(FieldError(path, "FieldValueNotSupported",
                               f"Unsupported value: {fmt_value(node)}: supported values: {allowed}"))
    if isinstance(node, str):
        if "minLength" in schema and len(node) < schema["minLength"]:
            inv(f"{path} in body should be at least {schema['minLength']} chars long")
        if "maxLength" in schema and len(node) > schema["maxLength"]:
            errs.append(FieldError(path, "FieldValueTooLong",
                                   f"Too long: may not be more than {schema['maxLength']} bytes"))
        if "pattern" in schema and not re.search(schema["pattern"], node):
            inv(f"{path} in body should match '{schema['pattern']}'")
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        if "minimum" in schema:
            if schema.get("exclusiveMinimum") and node <= schema["minimum"]:
                inv(f"{path} in body should be greater than {schema['minimum']}")
            elif node < schema["minimum"]:
                inv(f"{path} in body should be greater than or equal to {schema['minimum']}")
        if "maximum" in schema:
            if schema.get("exclusiveMaximum") and node >= schema["maximum"]:
                inv(f"{path} in body should be less than {schema['maximum']}")
            elif node > schema["maximum"]:
                inv(f"{path} in body should be less than or equal to {schema['maximum']}")
    if isinstance(node, list):
        if "minItems" in schema and len(node) < schema["minItems"]:
            inv(f"{path} in body should have at least {schema['minItems']} items")
        if "maxItems" in schema and len(node) > schema["maxItems"]:
            errs.append(FieldError(path, "FieldValueTooMany",
                                   f"Too many: {len(node)}: must have at most {schema['maxItems']} items"))
        list_type = schema.get("x-kubernetes-list-type")
        if list_type in ("set", "map"):
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen = []
            for i, item in enumerate(node):
                ident = ({k: item.get(k) for k in keys} if list_type == "map" and isinstance(item, dict)
                         else item)
                if ident in seen:
                    errs.append(FieldError(f"{path}[{i}]", "FieldValueDuplicate",
                                           f"Duplicate value: {json.dumps(ident, sort_keys=True)}"))
                seen.append(ident)
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(node):
                validate(item, schema["items"], f"{path}[{i}]", errs)
    if isinstance(node, dict):
        for req in schema.get("required") or []:
            if req not in node:
                errs.append(FieldError(join_path(path, req), "FieldValueRequired", "Required value"))
        if "minProperties" in schema and len(node) < schema["minProperties"]:
            inv(f"{path} in body should have at least {schema['minProperties']} properties")
        if "maxProperties" in schema and len(node) > schema["maxProperties"]:
            inv(f"{path} in body should have at most {schema['maxProperties']} properties")
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for key, value in node.items():
            if root and key == "metadata":
                continue
            if key in props:
                validate(value, props[key], join_path(path, key), errs)
            elif isinstance(addl, dict):
                validate(value, addl, f"{path}[{key}]", errs)
    # Value-only combinators (structural schemas allow them without types).
    for branch in schema.get("allOf") or []:
        validate(node, branch, path, errs)
    if schema.get("anyOf"):
        if not any(_passes(node, b, path) for b in schema["anyOf"]):
            inv(f"{path} in body must validate at least one schema (anyOf)")
    if schema.get("oneOf"):
        if sum(1 for b in schema["oneOf"] if _passes(node, b, path)) != 1:
            inv(f"{path} in body must validate one and only one schema (oneOf)")
    if "not" in schema and _passes(node, schema["not"], path):
        inv(f"{path} in body must not validate the schema (not)")
    for rule in schema.get("x-kubernetes-validations") or []:
        text = rule.get("rule", "")
        check = CEL_RULES.get(text)
        if check is None:
            if text not in _unknown_rules_logged:
                _unknown_rules_logged.add(text)
                _log(f"CEL rule not implemented by the fake, treated as satisfied: {text}")
            continue
        if not check(node):
            at = path + rule.get("fieldPath", "") if rule.get("fieldPath") else path
            errs.append(FieldError(at, rule.get("reason", "FieldValueInvalid"),
                                   f'Invalid value: "{json_type(node)}": {rule.get("message") or "failed rule: " + text}'))


def _passes(node: Any, schema: dict, path: str) -> bool:
    errs: list = []
    validate(node, schema, path, errs)
    return not errs


# --------------------------------------------------------------------------------------
# Patches: RFC 7386 merge patch, strategic merge patch (the subset kubectl sends),
# RFC 6902 JSON patch.
# --------------------------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# Merge keys of the built-in lists kubectl patches (normally learnt from
# `$setElementOrder/<field>` directives, which name the key of every element).
SMP_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "imagePullSecrets": "name", "conditions": "type",
    "hostAliases": "ip", "ownerReferences": "uid", "topologySpreadConstraints": "topologyKey",
    "volumeDevices": "devicePath", "envFrom": None, "args": None, "command": None,
}
_DELETE = object()


def _smp_list_key(field_name: str, patch_items: list, order: list | None) -> str | None:
    if order and isinstance(order[0], dict) and len(order[0]) == 1:
        return next(iter(order[0]))
    if field_name == "ports":
        sample = next((i for i in patch_items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return SMP_MERGE_KEYS.get(field_name)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch, good enough for kubectl's three-way patches of built-ins:
    `$patch` (replace/delete), `$retainKeys`, `$setElementOrder/<f>`,
    `$deleteFromPrimitiveList/<f>`, lists of objects merged by their merge key."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    result = dict(target) if isinstance(target, dict) else {}
    if isinstance(patch.get("$retainKeys"), list):
        keep = set(patch["$retainKeys"])
        result = {k: v for k, v in result.items() if k in keep}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [x for x in result.get(name) or [] if x not in value]
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        order = patch.get(f"$setElementOrder/{key}")
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key), value, order)
        else:
            result[key] = value
    for key, value in patch.items():  # reorder lists that only carried an order directive
        if key.startswith("$setElementOrder/") and key.split("/", 1)[1] not in patch:
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list):
                result[name] = _smp_list(name, result[name], [], value)
    return result


def _smp_list(name: str, current: Any, items: list, order: list | None) -> list:
    current = list(current) if isinstance(current, list) else []
    if len(items) == 1 and isinstance(items[0], dict) and items[0].get("$patch") == "replace":
        return []
    key = _smp_list_key(name, items, order)
    if key is None or not all(isinstance(i, dict) for i in items + current):
        if order is not None and all(not isinstance(i, dict) for i in items):
            # A primitive list with the merge strategy (e.g. finalizers): union, ordered.
            merged = current + [i for i in items if i not in current]
            return sorted(merged, key=lambda x: order.index(x) if x in order else len(order))
        return copy.deepcopy(items)
    result = current
    for item in items:
        ident = item.get(key)
        idx = next((i for i, c in enumerate(result) if c.get(key) == ident), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
            continue
        if idx is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[idx] = strategic_merge_patch(result[idx], item)
    if order:
        rank = {json.dumps(o.get(key)): n for n, o in enumerate(order) if isinstance(o, dict)}
        result.sort(key=lambda c: rank.get(json.dumps(c.get(key)), len(rank)))
    return result


def _pointer(path: str) -> list:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise ApiError(400, "json patch must be a list of operations")
    doc = copy.deepcopy(doc)

    def parent(tokens):
        node = doc
        for t in tokens[:-1]:
            node = node[int(t)] if isinstance(node, list) else node[t]
        return node

    def get(tokens):
        node = doc
        for t in tokens:
            node = node[int(t)] if isinstance(node, list) else node[t]
        return node

    def add(tokens, value):
        nonlocal doc
        if not tokens:
            doc = value
            return
        p, last = parent(tokens), tokens[-1]
        if isinstance(p, list):
            p.insert(len(p) if last == "-" else int(last), value)
        else:
            p[last] = value

    def remove(tokens):
        p, last = parent(tokens), tokens[-1]
        return p.pop(int(last)) if isinstance(p, list) else p.pop(last)

    for op in ops:
        try:
            kind, tokens = op["op"], _pointer(op["path"])
            if kind == "add":
                add(tokens, copy.deepcopy(op["value"]))
            elif kind == "remove":
                remove(tokens)
            elif kind == "replace":
                remove(tokens)
                add(tokens, copy.deepcopy(op["value"]))
            elif kind == "move":
                add(tokens, remove(_pointer(op["from"])))
            elif kind == "copy":
                add(tokens, copy.deepcopy(get(_pointer(op["from"]))))
            elif kind == "test":
                if get(tokens) != op["value"]:
                    raise ApiError(422, f"testing value {op['path']} failed")
            else:
                raise ApiError(422, f"unexpected kind of operation: {kind}")
        except ApiError:
            raise
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiError(422, f"the server rejected our request due to an error in our request: "
                                f"json patch {op.get('op') if isinstance(op, dict) else op} failed: {e}")
    return doc


# --------------------------------------------------------------------------------------
# Protobuf request bodies. kubectl's `create <kind>` generators send built-ins as
# `application/vnd.kubernetes.protobuf`: the "k8s\0" magic, then a runtime.Unknown
# envelope {typeMeta=1 {apiVersion=1, kind=2}, raw=2}. Only the kinds those
# generators produce most are described here; others answer 415.
# --------------------------------------------------------------------------------------

PB_MESSAGES: dict[str, dict[int, tuple]] = {
    # field number: (json name, type); types: string, bytes, bool, int, time, map:<v>, msg:<M>, list:<t>
    "ObjectMeta": {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                   5: ("uid", "string"), 6: ("resourceVersion", "string"), 7: ("generation", "int"),
                   11: ("labels", "map:string"), 12: ("annotations", "map:string"),
                   14: ("finalizers", "list:string")},
    "Namespace": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "list:string")},
    "Secret": {1: ("metadata", "msg:ObjectMeta"), 2: ("data", "map:bytes"), 3: ("type", "string"),
               4: ("stringData", "map:string"), 5: ("immutable", "bool")},
    "ConfigMap": {1: ("metadata", "msg:ObjectMeta"), 2: ("data", "map:string"), 3: ("binaryData", "map:bytes"),
                  4: ("immutable", "bool")},
    "ServiceAccount": {1: ("metadata", "msg:ObjectMeta"), 3: ("imagePullSecrets", "list:msg:LocalObjectReference"),
                       4: ("automountServiceAccountToken", "bool")},
    "LocalObjectReference": {1: ("name", "string")},
}


def _pb_fields(data: bytes):
    """Yields (field number, wire type, value) of one protobuf message."""
    pos = 0

    def varint():
        nonlocal pos
        shift = result = 0
        while True:
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while pos < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            yield number, wire, varint()
        elif wire == 2:
            n = varint()
            yield number, wire, data[pos:pos + n]
            pos += n
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            yield number, wire, data[pos:pos + size]
            pos += size
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _pb_value(kind: str, raw: Any) -> Any:
    if kind == "string":
        return raw.decode()
    if kind == "bytes":
        return base64.b64encode(raw).decode()
    if kind == "bool":
        return bool(raw)
    if kind == "int":
        return raw
    if kind.startswith("msg:"):
        return pb_decode(kind[4:], raw)
    raise ValueError(kind)


def pb_decode(message: str, data: bytes) -> dict:
    schema, out = PB_MESSAGES[message], {}
    for number, _, raw in _pb_fields(data):
        if number not in schema:
            continue  # a field the fake does not model
        name, kind = schema[number]
        if kind.startswith("map:"):
            entry = {n: v for n, _, v in _pb_fields(raw)}
            key = entry.get(1, b"").decode()
            out.setdefault(name, {})[key] = _pb_value(kind[4:], entry.get(2, b""))
        elif kind.startswith("list:"):
            out.setdefault(name, []).append(_pb_value(kind[5:], raw))
        else:
            out[name] = _pb_value(kind, raw)
    return out


def decode_protobuf_object(body: bytes) -> dict:
    if not body.startswith(b"k8s\x00"):
        raise ApiError(400, "protobuf body without the k8s magic prefix")
    envelope = {n: v for n, _, v in _pb_fields(body[4:])}
    type_meta = {n: v.decode() for n, _, v in _pb_fields(envelope.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    if kind not in PB_MESSAGES or api_version != "v1":
        raise ApiError(415, f"fake-apiserver cannot decode protobuf {api_version}/{kind}; send JSON "
                            f"(e.g. kubectl apply) instead", "UnsupportedMediaType")
    return {"apiVersion": api_version, "kind": kind, **pb_decode(kind, envelope.get(2, b""))}


# --------------------------------------------------------------------------------------
# Selectors.
# --------------------------------------------------------------------------------------

_LABEL_REQ = re.compile(
    r"^\s*(?P<not>!)?\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[-A-Za-z0-9_.]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)"
    r"|(?P<cmp>[<>])\s*(?P<num>-?\d+))?\s*$")


class LabelSelector:
    def __init__(self, text: str | None):
        self.reqs = []
        depth, start, text = 0, 0, text or ""
        parts = []
        for i, ch in enumerate(text):  # split on commas outside parentheses
            depth += ch == "("
            depth -= ch == ")"
            if ch == "," and depth == 0:
                parts.append(text[start:i])
                start = i + 1
        parts.append(text[start:])
        for part in parts:
            if not part.strip():
                continue
            m = _LABEL_REQ.match(part)
            if not m or (m.group("not") and (m.group("op") or m.group("setop") or m.group("cmp"))):
                raise ApiError(400, f"unable to parse requirement: found '{part.strip()}', expected: "
                                    f"valid label selector")
            self.reqs.append(m.groupdict())

    def matches(self, labels: dict | None) -> bool:
        labels = labels or {}
        for r in self.reqs:
            key, present = r["key"], r["key"] in labels
            value = labels.get(key)
            if r["not"]:
                ok = not present
            elif r["op"] in ("=", "=="):
                ok = present and value == r["value"]
            elif r["op"] == "!=":
                ok = not present or value != r["value"]
            elif r["setop"]:
                values = {v.strip() for v in r["values"].split(",")}
                ok = (present and value in values) if r["setop"] == "in" else (not present or value not in values)
            elif r["cmp"]:
                try:
                    n = int(value)
                except (TypeError, ValueError):
                    return False
                ok = n > int(r["num"]) if r["cmp"] == ">" else n < int(r["num"])
            else:
                ok = present
            if not ok:
                return False
        return True


class FieldSelector:
    SUPPORTED = {"metadata.name", "metadata.namespace"}
    EXTRA = {"secrets": {"type"}, "events": {"involvedObject.name", "involvedObject.kind", "reason", "type"}}

    def __init__(self, text: str | None, rt: ResourceType):
        self.reqs = []
        allowed = self.SUPPORTED | self.EXTRA.get(rt.plural if not rt.group else "", set())
        for part in (text or "").split(","):
            if not part.strip():
                continue
            m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*", part)
            if not m:
                raise ApiError(400, f"invalid selector: '{part}'; can't understand '{part}'")
            if m.group(1) not in allowed:
                raise ApiError(400, f"field label not supported: {m.group(1)}")
            self.reqs.append((m.group(1), m.group(2) != "!=", m.group(3)))

    @property
    def name(self) -> str | None:
        return next((v for f, eq, v in self.reqs if f == "metadata.name" and eq), None)

    def matches(self, obj: dict) -> bool:
        for path, eq, value in self.reqs:
            node: Any = obj
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if ((node or "") == value) != eq:
                return False
        return True


# --------------------------------------------------------------------------------------
# Small helpers: time, JSONPath for printer columns, names.
# --------------------------------------------------------------------------------------

def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_duration(seconds: float) -> str:
    """kubectl's AGE formatting (e.g. 45s, 3m20s, 5h, 2d3h)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        return f"{h // 24 // 365}y{(h // 24) % 365}d" if (h // 24) % 365 else f"{h // 24 // 365}y"
    return f"{h // 24 // 365}y"


_JP = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+|\*)\]|\['([^']*)'\]"
                 r"|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def jsonpath(obj: Any, expr: str) -> list:
    """The JSONPath subset printer columns use: .a.b, [0], [*], ['k'], [?(@.k=="v")]."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    nodes, pos = [obj], 0
    while pos < len(expr):
        m = _JP.match(expr, pos)
        if not m:
            return []
        pos = m.end()
        name, index, quoted, fkey, fval = m.groups()
        nxt = []
        for n in nodes:
            if name is not None or quoted is not None:
                key = name if name is not None else quoted
                if isinstance(n, dict) and key in n:
                    nxt.append(n[key])
            elif index is not None and isinstance(n, list):
                nxt.extend(n if index == "*" else n[int(index):int(index) + 1])
            elif fkey is not None and isinstance(n, list):
                for item in n:
                    v: Any = item
                    for part in fkey.split("."):
                        v = v.get(part) if isinstance(v, dict) else None
                    if v is not None and str(v) == fval:
                        nxt.append(item)
        nodes = nxt
    return nodes


DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def validate_metadata(rt: ResourceType, meta: dict) -> list:
    errs = []
    name = meta.get("name", "")
    if rt.plural == "namespaces":
        if not DNS_LABEL.match(name) or len(name) > 63:
            errs.append(FieldError("metadata.name", "FieldValueInvalid",
                                   f"Invalid value: {fmt_value(name)}: a lowercase RFC 1123 label must consist of "
                                   "lower case alphanumeric characters or '-', and must start and end with an "
                                   "alphanumeric character"))
    elif not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        errs.append(FieldError("metadata.name", "FieldValueInvalid",
                               f"Invalid value: {fmt_value(name)}: a lowercase RFC 1123 subdomain must consist of "
                               "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                               "alphanumeric character"))
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        errs.append(FieldError("metadata.labels", "FieldValueTypeInvalid", "Invalid value: must be a map"))
        labels = {}
    for k, v in labels.items():
        prefix, _, nm = k.rpartition("/")
        if not LABEL_NAME.match(nm) or len(nm) > 63 or (prefix and not DNS_SUBDOMAIN.match(prefix)):
            errs.append(FieldError("metadata.labels", "FieldValueInvalid",
                                   f"Invalid value: {fmt_value(k)}: name part must consist of alphanumeric "
                                   "characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
        if not isinstance(v, str) or not LABEL_VALUE.match(v) or len(v) > 63:
            errs.append(FieldError("metadata.labels", "FieldValueInvalid",
                                   f"Invalid value: {fmt_value(v)}: a valid label must be an empty string or consist "
                                   "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                                   "alphanumeric character"))
    annotations = meta.get("annotations") or {}
    size = sum(len(k) + len(str(v)) for k, v in annotations.items()) if isinstance(annotations, dict) else 0
    if size > MAX_ANNOTATIONS_BYTES:
        errs.append(FieldError("metadata.annotations", "FieldValueTooLong",
                               f"Too long: may not be more than {MAX_ANNOTATIONS_BYTES} bytes"))
    return errs


# --------------------------------------------------------------------------------------
# The store: objects, the resourceVersion counter, the event history, CRDs.
# --------------------------------------------------------------------------------------

@dataclass
class Event:
    rv: int
    gr: tuple
    type: str       # ADDED / MODIFIED / DELETED
    obj: dict       # object after the change (never mutated afterwards)
    prev: dict | None


def _key(obj: dict) -> tuple:
    m = obj["metadata"]
    return (m.get("namespace", ""), m["name"])


class Store:
    """All state, guarded by one condition variable (`cond`). Stored objects are never
    mutated in place: every write stores a new dict, so events and snapshots can share them."""

    def __init__(self, state_dir: str | None, history_limit: int, auto_namespaces: bool,
                 lb_ip: str | None):
        self.cond = threading.Condition()
        self.rv = 0
        self.compacted_rv = 0           # events with rv <= compacted_rv are gone
        self.history: list[Event] = []
        self.history_limit = history_limit
        self.objects: dict[tuple, dict[tuple, dict]] = {}
        self.types: dict[tuple, ResourceType] = {}   # (group, version, plural) -> type
        self.registry_gen = 0
        self.state_dir = state_dir
        self.auto_namespaces = auto_namespaces
        self.lb_ip = lb_ip
        self._next_ip = 1
        self._next_node_port = 30000
        for rt in BUILTINS:
            self.types[(rt.group, rt.version, rt.plural)] = rt
        if not self._load():
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self.create(self.type("", "v1", "namespaces"), None,
                            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, "Ignore")

    # ---- registry ----

    def type(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version, plural))

    def types_of(self, group: str, plural: str) -> list:
        return [t for t in self.types.values() if t.gr == (group, plural)]

    def register_crd(self, crd: dict) -> None:
        self.unregister_crd(crd["metadata"]["name"], drop_objects=False)
        spec = crd["spec"]
        names = spec["names"]
        for v in spec["versions"]:
            if not v.get("served", True):
                continue
            cols = v.get("additionalPrinterColumns")
            if cols is None:
                cols = [AGE_COLUMN]
            rt = ResourceType(spec["group"], v["name"], names["plural"], names["kind"],
                              spec["scope"] == "Namespaced", singular=names.get("singular", ""),
                              short_names=list(names.get("shortNames") or []),
                              categories=list(names.get("categories") or []),
                              status="status" in ((v.get("subresources") or {})),
                              schema=(v.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"},
                              columns=[dict(c) for c in cols], crd=crd["metadata"]["name"])
            self.types[(rt.group, rt.version, rt.plural)] = rt
        self.registry_gen += 1

    def unregister_crd(self, crd_name: str, drop_objects: bool) -> None:
        gone = [k for k, t in self.types.items() if t.crd == crd_name]
        for k in gone:
            rt = self.types.pop(k)
            if drop_objects:
                for obj in list(self.objects.get(rt.gr, {}).values()):
                    self._commit_delete(rt, obj)
        if gone:
            self.registry_gen += 1

    # ---- history ----

    def _record(self, gr: tuple, type_: str, obj: dict, prev: dict | None) -> None:
        self.history.append(Event(self.rv, gr, type_, obj, prev))
        if len(self.history) > self.history_limit:
            drop = len(self.history) - self.history_limit
            self.compacted_rv = self.history[drop - 1].rv
            del self.history[:drop]
        self.cond.notify_all()

    def compact(self) -> None:
        with self.cond:
            self.history.clear()
            self.compacted_rv = self.rv
            self.cond.notify_all()

    def events_after(self, rv: int) -> list:
        if rv < self.compacted_rv:
            raise ApiError(410, f"too old resource version: {rv} ({self.compacted_rv + 1})", "Expired")
        start = bisect.bisect_right(self.history, rv, key=lambda e: e.rv)
        return self.history[start:]

    def snapshot(self, gr: tuple, at_rv: int | None) -> dict:
        """The objects of one resource as they were at `at_rv` (None: now)."""
        objs = dict(self.objects.get(gr, {}))
        if at_rv is None or at_rv >= self.rv:
            return objs
        for ev in reversed(self.events_after(at_rv)):
            if ev.gr != gr:
                continue
            key = _key(ev.obj)
            if ev.type == "ADDED":
                objs.pop(key, None)
            else:
                objs[key] = ev.prev
        return objs

    # ---- persistence (write-through, one JSON file) ----

    def _persist(self) -> None:
        if not self.state_dir:
            return
        data = {"resourceVersion": self.rv,
                "objects": [{"group": g, "plural": p, "object": o}
                            for (g, p), objs in self.objects.items() for o in objs.values()]}
        path = os.path.join(self.state_dir, "state.json")
        with open(path + ".tmp", "w") as f:
            json.dump(data, f)
        os.replace(path + ".tmp", path)

    def _load(self) -> bool:
        path = os.path.join(self.state_dir or "", "state.json")
        if not self.state_dir or not os.path.exists(path):
            return False
        with open(path) as f:
            data = json.load(f)
        self.rv = self.compacted_rv = int(data["resourceVersion"])
        entries = data["objects"]
        for e in entries:
            if (e["group"], e["plural"]) == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self.register_crd(e["object"])
        for e in entries:
            if self.types_of(e["group"], e["plural"]):
                self.objects.setdefault((e["group"], e["plural"]), {})[_key(e["object"])] = e["object"]
        return True

    # ---- commits: the only places that change state ----

    def _commit(self, rt: ResourceType, obj: dict, prev: dict | None) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects.setdefault(rt.gr, {})[_key(obj)] = obj
        self._record(rt.gr, "MODIFIED" if prev else "ADDED", obj, prev)
        self._persist()
        return obj

    def _commit_delete(self, rt: ResourceType, obj: dict) -> dict:
        if rt.gr == ("", "namespaces"):  # the namespace controller's job, done at once
            for gr, objs in list(self.objects.items()):
                for key, child in list(objs.items()):
                    if key[0] == obj["metadata"]["name"] and gr != rt.gr:
                        self._commit_delete(self.types_of(*gr)[0], child)
        if rt.gr == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.unregister_crd(obj["metadata"]["name"], drop_objects=True)
        self.rv += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self.objects.get(rt.gr, {}).pop(_key(obj), None)
        self._record(rt.gr, "DELETED", gone, obj)
        self._persist()
        return gone

    # ---- admission: defaults, type-specific behaviour, validation ----

    def _namespace_exists(self, ns: str) -> bool:
        return ("", ns) in self.objects.get(("", "namespaces"), {})

    def _admit(self, rt: ResourceType, obj: dict, old: dict | None, fv: str, warnings: list) -> None:
        name = obj["metadata"].get("name", "")
        unknown: list = []
        if rt.schema is not None:
            prune(obj, rt.schema, "", unknown, root=True)
        elif rt.fields is not None:
            for k in list(obj):
                if k not in rt.fields and k not in ("apiVersion", "kind", "metadata"):
                    unknown.append(k)
                    del obj[k]
        if unknown:
            if fv == "Strict":
                joined = ", ".join(f'unknown field "{u}"' for u in unknown)
                raise ApiError(400, f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                    f"strict decoding error: {joined}")
            if fv == "Warn":
                warnings.extend(f'unknown field "{u}"' for u in unknown)
        errs = validate_metadata(rt, obj["metadata"])
        errs += self._prepare(rt, obj, old)
        if rt.schema is not None:
            apply_defaults(obj, rt.schema)
            validate(obj, rt.schema, "", errs, root=True)
        if errs:
            raise invalid(rt, name, errs)

    def _prepare(self, rt: ResourceType, obj: dict, old: dict | None) -> list:
        """What the real registry strategies do for the built-ins that need it."""
        errs: list = []
        if rt.gr == ("", "namespaces"):
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
        elif rt.gr == ("", "secrets"):
            obj.setdefault("type", "Opaque")
            data = obj.get("data") or {}
            for k, v in (obj.pop("stringData", None) or {}).items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            for k, v in data.items():
                if not re.fullmatch(r"[-._a-zA-Z0-9]+", k):
                    errs.append(FieldError(f"data[{k}]", "FieldValueInvalid",
                                           f"Invalid value: {fmt_value(k)}: a valid config key must consist of "
                                           "alphanumeric characters, '-', '_' or '.'"))
                try:
                    base64.b64decode(v, validate=True)
                except (ValueError, TypeError):
                    raise ApiError(400, f"Secret in version \"v1\" cannot be handled as a Secret: illegal "
                                        f"base64 data in data[{k}]")
            if data:
                obj["data"] = data
            if old is not None and old.get("type") != obj.get("type"):
                errs.append(FieldError("type", "FieldValueInvalid",
                                       f"Invalid value: {fmt_value(obj.get('type'))}: field is immutable"))
        elif rt.gr == ("", "services"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            old_spec = (old or {}).get("spec") or {}
            if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
                if old_spec.get("clusterIP"):
                    spec["clusterIP"] = old_spec["clusterIP"]
                else:
                    spec["clusterIP"] = f"10.96.{self._next_ip // 250}.{self._next_ip % 250 + 1}"
                    self._next_ip += 1
                spec["clusterIPs"] = [spec["clusterIP"]]
            if spec["type"] in ("NodePort", "LoadBalancer"):
                old_ports = {p.get("port"): p.get("nodePort") for p in old_spec.get("ports") or []}
                for p in spec.get("ports") or []:
                    if p.get("nodePort"):
                        continue
                    if old_ports.get(p.get("port")):
                        p["nodePort"] = old_ports[p.get("port")]
                    else:
                        p["nodePort"] = self._next_node_port
                        self._next_node_port += 1
        elif rt.gr == ("apps", "deployments"):
            obj.setdefault("spec", {}).setdefault("replicas", 1)
        elif rt.gr == ("apiextensions.k8s.io", "customresourcedefinitions"):
            errs += self._validate_crd(obj, old)
        return errs

    def _validate_crd(self, crd: dict, old: dict | None) -> list:
        errs = []
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for f in ("group", "scope"):
            if not spec.get(f):
                errs.append(FieldError(f"spec.{f}", "FieldValueRequired", "Required value"))
        for f in ("plural", "kind"):
            if not names.get(f):
                errs.append(FieldError(f"spec.names.{f}", "FieldValueRequired", "Required value"))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            errs.append(FieldError("spec.scope", "FieldValueNotSupported",
                                   f'Unsupported value: {fmt_value(spec.get("scope"))}: supported values: '
                                   f'"Cluster", "Namespaced"'))
        if names.get("plural") and spec.get("group") and \
                crd["metadata"]["name"] != f"{names['plural']}.{spec['group']}":
            errs.append(FieldError("metadata.name", "FieldValueInvalid",
                                   f'Invalid value: {fmt_value(crd["metadata"]["name"])}: must be '
                                   f'spec.names.plural+"."+spec.group'))
        versions = spec.get("versions") or []
        if not versions:
            errs.append(FieldError("spec.versions", "FieldValueInvalid", "Invalid value: null: must have exactly "
                                                                         "one version marked as storage version"))
        elif sum(1 for v in versions if v.get("storage")) != 1:
            errs.append(FieldError("spec.versions", "FieldValueInvalid",
                                   "Invalid value: []: must have exactly one version marked as storage version"))
        for i, v in enumerate(versions):
            if not ((v.get("schema") or {}).get("openAPIV3Schema")):
                errs.append(FieldError(f"spec.versions[{i}].schema.openAPIV3Schema", "FieldValueRequired",
                                       "Required value: schemas are required"))
        if not errs:
            old_status = (old or {}).get("status") or {}
            crd["status"] = {
                "acceptedNames": {"plural": names["plural"], "kind": names["kind"],
                                  "singular": names.get("singular", names["kind"].lower()),
                                  "listKind": names.get("listKind", names["kind"] + "List"),
                                  **({"shortNames": names["shortNames"]} if names.get("shortNames") else {}),
                                  **({"categories": names["categories"]} if names.get("categories") else {})},
                "conditions": old_status.get("conditions") or [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now_rfc3339()},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": now_rfc3339()},
                ],
                "storedVersions": [v["name"] for v in versions if v.get("storage")],
            }
        return errs

    def _after_commit(self, rt: ResourceType, obj: dict) -> None:
        if rt.gr == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.register_crd(obj)
        # Stand-in for a cloud load-balancer controller: give LoadBalancer Services an address.
        if rt.gr == ("", "services") and self.lb_ip and obj["spec"].get("type") == "LoadBalancer" and \
                not ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
            new = copy.deepcopy(obj)
            new["status"] = {"loadBalancer": {"ingress": [{"ip": self.lb_ip, "ipMode": "VIP"}]}}
            self._commit(rt, new, obj)

    # ---- operations ----

    def get(self, rt: ResourceType, ns: str | None, name: str) -> dict:
        obj = self.objects.get(rt.gr, {}).get((ns or "", name))
        if obj is None:
            raise not_found(rt, name)
        return obj

    def create(self, rt: ResourceType, ns: str | None, body: dict, fv: str, dry_run: bool = False,
               warnings: list | None = None) -> dict:
        with self.cond:
            obj = copy.deepcopy(body)
            meta = obj.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise ApiError(400, "metadata must be an object")
            if rt.namespaced:
                if meta.get("namespace") and ns and meta["namespace"] != ns:
                    raise ApiError(400, "the namespace of the provided object does not match the namespace "
                                        "sent on the request")
                meta["namespace"] = ns or meta.get("namespace") or "default"
            else:
                meta.pop("namespace", None)
            if not meta.get("name"):
                if meta.get("generateName"):
                    meta["name"] = meta["generateName"] + "".join(
                        random.choices(string.ascii_lowercase + string.digits, k=5))
                else:
                    raise invalid(rt, "", [FieldError("metadata.name", "FieldValueRequired",
                                                      "Required value: name or generateName is required")])
            if rt.namespaced and not self._namespace_exists(meta["namespace"]):
                if not self.auto_namespaces:
                    raise ApiError(404, f'namespaces "{meta["namespace"]}" not found',
                                   details={"name": meta["namespace"], "kind": "namespaces"})
                self.create(self.type("", "v1", "namespaces"), None,
                            {"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": meta["namespace"]}}, "Ignore")
            if _key(obj) in self.objects.get(rt.gr, {}):
                raise ApiError(409, f'{rt.qualified} "{meta["name"]}" already exists', "AlreadyExists",
                               details={"name": meta["name"], "group": rt.group, "kind": rt.plural})
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            for f in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation", "managedFields", "selfLink"):
                meta.pop(f, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
            if rt.status:
                obj.pop("status", None)
            self._admit(rt, obj, None, fv, warnings if warnings is not None else [])
            if dry_run:
                return obj
            self._commit(rt, obj, None)
            self._after_commit(rt, obj)
            return obj

    def replace(self, rt: ResourceType, ns: str | None, name: str, body: dict, subresource: str | None,
                fv: str, dry_run: bool = False, warnings: list | None = None,
                require_rv: bool = True) -> dict:
        """PUT semantics (also the tail of every patch)."""
        with self.cond:
            old = self.get(rt, ns, name)
            if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
                raise ApiError(400, "the body of the request was in an unknown format")
            meta = body.setdefault("metadata", {})
            if meta.get("name", name) != name:
                raise ApiError(400, f"the name of the object ({meta['name']}) does not match the name on "
                                    f"the URL ({name})")
            if rt.namespaced and meta.get("namespace", ns) != ns:
                raise ApiError(400, "the namespace of the provided object does not match the namespace sent "
                                    "on the request")
            if body.get("kind", rt.kind) != rt.kind:
                raise ApiError(400, f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                                    f'wrong kind {body.get("kind")!r}')
            rv = meta.get("resourceVersion")
            if rv:
                if rv != old["metadata"]["resourceVersion"]:
                    raise conflict(rt, name)
            elif require_rv and rt.crd:
                raise invalid(rt, name, [FieldError("metadata.resourceVersion", "FieldValueInvalid",
                                                    "Invalid value: 0x0: must be specified for an update")])
            if subresource == "status":
                new = copy.deepcopy(old)
                if "status" in body:
                    new["status"] = copy.deepcopy(body["status"])
                else:
                    new.pop("status", None)
            else:
                new = copy.deepcopy(body)
                new["apiVersion"], new["kind"] = rt.api_version, rt.kind
                nm = new["metadata"]
                for f in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                          "generation", "name", "namespace"):
                    if f in old["metadata"]:
                        nm[f] = old["metadata"][f]
                    else:
                        nm.pop(f, None)
                nm.pop("managedFields", None)
                if rt.status:
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            self._admit(rt, new, old, fv, warnings if warnings is not None else [])
            if subresource != "status" and self._spec_view(rt, new) != self._spec_view(rt, old):
                new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            if new == old:
                return old  # a no-op write: no new resourceVersion, no event
            if dry_run:
                return new
            if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
                return self._commit_delete(rt, new)
            self._commit(rt, new, old)
            self._after_commit(rt, new)
            return new

    @staticmethod
    def _spec_view(rt: ResourceType, obj: dict) -> dict:
        skip = {"metadata", "status"} if rt.status else {"metadata"}
        return {k: v for k, v in obj.items() if k not in skip}

    def patch(self, rt: ResourceType, ns: str | None, name: str, patch_type: str, body: Any,
              subresource: str | None, fv: str, dry_run: bool = False, warnings: list | None = None,
              force: bool = False) -> tuple[dict, bool]:
        """Returns (object, created)."""
        with self.cond:
            existing = self.objects.get(rt.gr, {}).get((ns or "", name))
            if patch_type == "apply":
                # Server-side apply, simplified: create, or merge the applied configuration.
                if not isinstance(body, dict):
                    raise ApiError(400, "apply patch must be an object")
                if existing is None:
                    if subresource:
                        raise not_found(rt, name)
                    body.setdefault("metadata", {})["name"] = name
                    return self.create(rt, ns, body, fv, dry_run, warnings), True
                patched = merge_patch(existing, body)
            elif existing is None:
                raise not_found(rt, name)
            elif patch_type == "merge":
                if not isinstance(body, dict):
                    raise ApiError(400, "merge patch must be an object")
                patched = merge_patch(existing, body)
            elif patch_type == "strategic":
                if rt.crd:
                    raise ApiError(415, "strategic merge patch is not supported for custom resources",
                                   "UnsupportedMediaType")
                if not isinstance(body, dict):
                    raise ApiError(400, "strategic merge patch must be an object")
                patched = strategic_merge_patch(existing, body)
            else:
                patched = json_patch(existing, body)
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise ApiError(422, "the patched object is not a valid object")
            # A resourceVersion in the patch is a precondition; otherwise patch the current one.
            patched_rv = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
            if not patched_rv or patch_type == "apply":
                patched["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            return self.replace(rt, ns, name, patched, subresource, fv, dry_run, warnings), False

    def delete(self, rt: ResourceType, ns: str | None, name: str, options: dict, dry_run: bool = False) -> dict:
        with self.cond:
            old = self.get(rt, ns, name)
            pre = (options or {}).get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                         f"UID in object meta: {old['metadata']['uid']}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                                         f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                         f"{old['metadata']['resourceVersion']}")
            if dry_run:
                return old
            if old["metadata"].get("finalizers"):
                if old["metadata"].get("deletionTimestamp"):
                    return old
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                return self._commit(rt, new, old)
            return self._commit_delete(rt, old)

    def list(self, rt: ResourceType, ns: str | None, labels: LabelSelector, fields: FieldSelector,
             at_rv: int | None) -> tuple[list, int]:
        with self.cond:
            objs = self.snapshot(rt.gr, at_rv)
            rv = self.rv if at_rv is None else at_rv
        items = [o for k, o in sorted(objs.items())
                 if (ns is None or k[0] == ns) and labels.matches(o["metadata"].get("labels"))
                 and fields.matches(o)]
        return items, rv


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, f'{rt.qualified} "{name}" not found',
                    details={"name": name, "group": rt.group, "kind": rt.plural})


def conflict(rt: ResourceType, name: str, why: str | None = None) -> ApiError:
    why = why or ("the object has been modified; please apply your changes to the latest version "
                  "and try again")
    return ApiError(409, f'Operation cannot be fulfilled on {rt.qualified} "{name}": {why}', "Conflict",
                    details={"name": name, "group": rt.group, "kind": rt.plural})


def invalid(rt: ResourceType, name: str, errs: list) -> ApiError:
    summary = str(errs[0]) if len(errs) == 1 else "[" + ", ".join(str(e) for e in errs) + "]"
    return ApiError(422, f'{rt.group_kind} "{name}" is invalid: {summary}', "Invalid", details={
        "name": name, "group": rt.group, "kind": rt.kind,
        "causes": [{"reason": e.reason, "message": e.body, "field": e.field} for e in errs]})


# --------------------------------------------------------------------------------------
# Fault injection and statistics.
# --------------------------------------------------------------------------------------

@dataclass
class FailRule:
    count: int
    code: int
    path: str = ""     # only requests whose path starts with this
    verb: str = ""     # only this verb (get, list, watch, create, update, patch, delete, ...)


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules: list[FailRule] = []
        self.epoch = 0                   # bumped to drop watches / connections
        self.by_verb: dict[str, int] = {}
        self.by_resource: dict[str, dict[str, int]] = {}
        self.injected = 0
        self.open_watches = 0
        self.connections: set = set()

    def count(self, verb: str, resource: str | None) -> None:
        with self.lock:
            self.by_verb[verb] = self.by_verb.get(verb, 0) + 1
            if resource:
                r = self.by_resource.setdefault(resource, {})
                r[verb] = r.get(verb, 0) + 1

    def take(self, path: str, verb: str) -> FailRule | None:
        with self.lock:
            for rule in self.rules:
                if path.startswith(rule.path) and (not rule.verb or rule.verb == verb):
                    rule.count -= 1
                    if rule.count <= 0:
                        self.rules.remove(rule)
                    self.injected += 1
                    return rule
        return None


# --------------------------------------------------------------------------------------
# HTTP.
# --------------------------------------------------------------------------------------

def _shutdown_socket(sock) -> None:
    """Cut a connection at the TCP level (no TLS close_notify, no final chunk)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver"
    timeout = 120  # idle keep-alive connections
    # TCP_NODELAY: a response is written as headers, then body; with Nagle's algorithm the body
    # waits for the client's delayed ACK of the headers (40 ms on Linux) on every request.
    disable_nagle_algorithm = True

    # ---- connection lifecycle ----

    def setup(self):
        ctx = self.server.ssl_context
        if ctx is not None:
            self.request.settimeout(10)
            self.request = ctx.wrap_socket(self.request, server_side=True)  # handshake in this thread
        super().setup()
        with self.server.faults.lock:
            self.server.faults.connections.add(self.request)

    def finish(self):
        with self.server.faults.lock:
            self.server.faults.connections.discard(self.request)
        try:
            super().finish()
        except OSError:
            pass
        try:
            self.request.close()
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if self.server.verbose:
            _log(fmt % args)

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # ---- plumbing ----

    @property
    def store(self) -> Store:
        return self.server.store

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code: int, payload: Any, headers: dict | None = None, warnings: list | None = None,
              content_type: str = "application/json") -> None:
        body = payload if isinstance(payload, bytes) else (json.dumps(payload) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        for w in warnings or []:
            self.send_header("Warning", '299 - ' + json.dumps(w))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self):
        try:
            self.raw_body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        url = urllib.parse.urlsplit(self.path)
        self.url_path = url.path
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if url.path.startswith("/_fake/"):
                return self._admin(url.path[len("/_fake/"):])
            if url.path not in PUBLIC_PATHS:
                auth = self.headers.get("Authorization", "")
                if auth != f"Bearer {self.server.token}":
                    raise ApiError(401, "Unauthorized")
            self._route()
        except ApiError as e:
            self._send(e.code, e.status(), e.headers)
        except (BrokenPipeError, ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # a bug in the fake: say so like the real server would
            _log(f"internal error on {self.command} {self.path}: {e!r}")
            import traceback
            traceback.print_exc()
            try:
                self._send(500, ApiError(500, f"fake-apiserver internal error: {e!r}").status())
            except OSError:
                self.close_connection = True

    def _maybe_fail(self, verb: str) -> None:
        rule = self.server.faults.take(self.url_path, verb)
        if rule:
            headers = {"Retry-After": "1"} if rule.code == 429 else {}
            details = {"retryAfterSeconds": 1} if rule.code == 429 else None
            raise ApiError(rule.code, f"injected failure ({rule.code})", details=details, headers=headers)

    # ---- routing ----

    def _route(self):
        path, method = self.url_path.rstrip("/") or "/", self.command
        segs = [s for s in path.split("/") if s]
        if not segs:
            return self._send(200, {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3",
                                              "/readyz", "/version"]})
        if path in PUBLIC_PATHS or path in ("/api", "/apis") or segs[:1] == ["openapi"] or \
                (segs[:1] == ["api"] and len(segs) <= 2) or (segs[:1] == ["apis"] and len(segs) <= 3):
            self.server.faults.count("discovery", None)
            self._maybe_fail("get")
            if method != "GET":
                raise ApiError(405, "the server does not allow this method on the requested resource")
            return self._discovery(path, segs)
        if segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        elif segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource", details={})
        watch = self.query.get("watch") in ("1", "true", "True")
        if rest[:1] == ["watch"]:  # legacy /watch/ paths
            rest, watch = rest[1:], True
        ns = None
        if rest[:1] == ["namespaces"] and len(rest) >= 3 and not (
                group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "the server could not find the requested resource", details={})
        plural, name = rest[0], (rest[1] if len(rest) > 1 else None)
        sub = rest[2] if len(rest) > 2 else None
        rt = self.store.type(group, version, plural)
        if rt is None or (ns is not None and not rt.namespaced) or (
                name is not None and rt.namespaced and ns is None) or (sub and not (sub == "status" and rt.status)):
            raise ApiError(404, "the server could not find the requested resource", details={})
        verb = {"GET": "watch" if watch else ("get" if name else "list"), "POST": "create", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete" if name else "deletecollection"}[method]
        self.server.faults.count(verb, rt.qualified)
        self._maybe_fail(verb)
        if verb == "watch":
            return self._watch(rt, ns, name)
        if verb == "list":
            return self._list(rt, ns)
        if verb == "get":
            with self.store.cond:
                obj = self.store.get(rt, ns, name)
            return self._send(200, self._render(rt, obj))
        dry_run = self.query.get("dryRun") == "All"
        fv = self.query.get("fieldValidation") or "Warn"
        if fv not in ("Strict", "Warn", "Ignore"):
            raise ApiError(400, f"fieldValidation parameter unsupported: {fv}")
        warnings: list = []
        if verb == "create":
            if name is not None or (rt.namespaced and ns is None):
                raise ApiError(405, "the server does not allow this method on the requested resource")
            obj = self.store.create(rt, ns, self._body(), fv, dry_run, warnings)
            return self._send(201, self._out(rt, obj), warnings=warnings)
        if verb == "update":
            obj = self.store.replace(rt, ns, name, self._body(), sub, fv, dry_run, warnings)
            return self._send(200, self._out(rt, obj), warnings=warnings)
        if verb == "patch":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            patch_type = {"application/merge-patch+json": "merge",
                          "application/strategic-merge-patch+json": "strategic",
                          "application/json-patch+json": "json",
                          "application/apply-patch+yaml": "apply"}.get(ctype)
            if patch_type is None:
                raise ApiError(415, "the body of the request was in an unknown format - accepted media types "
                                    "include: application/json-patch+json, application/merge-patch+json, "
                                    "application/apply-patch+yaml", "UnsupportedMediaType")
            if patch_type == "apply" and not self.query.get("fieldManager"):
                raise invalid(rt, name, [FieldError("fieldManager", "FieldValueRequired",
                                                    "Required value: is required for apply patch")])
            obj, created = self.store.patch(rt, ns, name, patch_type, self._body(), sub, fv, dry_run, warnings)
            return self._send(201 if created else 200, self._out(rt, obj), warnings=warnings)
        options = self._body() if self.raw_body.strip() else {}
        if not isinstance(options, dict):
            raise ApiError(400, "DeleteOptions must be an object")
        dry_run = dry_run or "All" in (options.get("dryRun") or [])
        if verb == "delete":
            obj = self.store.delete(rt, ns, name, options, dry_run)
            return self._send(200, self._out(rt, obj))
        # deletecollection
        labels = LabelSelector(self.query.get("labelSelector"))
        fields = FieldSelector(self.query.get("fieldSelector"), rt)
        items, _ = self.store.list(rt, ns, labels, fields, None)
        deleted = []
        for item in items:
            try:
                deleted.append(self.store.delete(rt, item["metadata"].get("namespace"), item["metadata"]["name"],
                                                 options, dry_run))
            except ApiError as e:
                if e.code != 404:
                    raise
        return self._send(200, self._list_body(rt, deleted, self.store.rv, None, None))

    def _body(self) -> Any:
        ctype = (self.headers.get("Content-Type") or "").lower()
        if "protobuf" in ctype:
            try:
                return decode_protobuf_object(self.raw_body)
            except (ValueError, IndexError, UnicodeDecodeError) as e:
                raise ApiError(400, f"the body of the request could not be decoded: {e}")
        try:
            text = self.raw_body.decode("utf-8")
            return yaml.safe_load(text) if "yaml" in ctype else json.loads(text)
        except (ValueError, yaml.YAMLError) as e:
            raise ApiError(400, f"the body of the request could not be decoded: {e}")

    # ---- rendering ----

    def _out(self, rt: ResourceType, obj: dict) -> dict:
        """An object as served at the requested version (no conversion: same fields)."""
        if obj.get("apiVersion") == rt.api_version:
            return obj
        return {**obj, "apiVersion": rt.api_version}

    def _table_version(self) -> str | None:
        for part in (self.headers.get("Accept") or "").split(","):
            params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
            if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and \
                    params.get("v") in ("v1", "v1beta1"):
                return params["v"]
        return None

    def _render(self, rt: ResourceType, obj: dict) -> dict:
        tv = self._table_version()
        if tv:
            return self._table(rt, [obj], tv, {"resourceVersion": obj["metadata"]["resourceVersion"]})
        return self._out(rt, obj)

    def _table(self, rt: ResourceType, objs: list, tv: str, meta: dict) -> dict:
        include = self.query.get("includeObject", "PartialObjectMetadata")
        cols = rt.columns
        defs = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                 "description": "Name must be unique within a namespace."}]
        defs += [{"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
                  "description": c.get("description", ""), "priority": c.get("priority", 0)} for c in cols]
        rows = []
        for obj in objs:
            cells: list = [obj["metadata"]["name"]]
            for c in cols:
                found = jsonpath(obj, c["jsonPath"])
                value = found[0] if found else None
                if value is None:
                    cells.append(None)
                elif c.get("type") == "date":
                    try:
                        t = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
                            tzinfo=datetime.timezone.utc)
                        cells.append(human_duration(
                            (datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()))
                    except (TypeError, ValueError):
                        cells.append(str(value))
                elif c.get("type", "string") == "string":
                    cells.append(value if isinstance(value, str) else json.dumps(value, separators=(",", ":")))
                else:
                    cells.append(value)
            row: dict = {"cells": cells}
            if include == "Object":
                row["object"] = self._out(rt, obj)
            elif include != "None":
                row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                 "metadata": obj["metadata"]}
            rows.append(row)
        return {"kind": "Table", "apiVersion": f"meta.k8s.io/{tv}", "metadata": meta,
                "columnDefinitions": defs, "rows": rows}

    def _list_body(self, rt: ResourceType, items: list, rv: int, cont: str | None, remaining: int | None) -> dict:
        meta: dict = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = remaining
        tv = self._table_version()
        if tv:
            return self._table(rt, items, tv, meta)
        if rt.crd:
            out_items = [self._out(rt, o) for o in items]
        else:  # typed lists of built-ins carry no kind/apiVersion per item
            out_items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        return {"kind": rt.kind + "List", "apiVersion": rt.api_version, "metadata": meta, "items": out_items}

    # ---- list with resourceVersion semantics and paging ----

    def _requested_rv(self, match: str | None, limit: int) -> int | None:
        """Returns the resourceVersion to serve (None: the newest), per the list semantics."""
        rv_text = self.query.get("resourceVersion", "")
        if match and not rv_text:
            raise ApiError(400, "resourceVersionMatch is forbidden unless resourceVersion is provided")
        if match not in (None, "", "Exact", "NotOlderThan"):
            raise ApiError(400, f"resourceVersionMatch: unsupported value {match!r}")
        if rv_text in ("", "0"):
            return None
        try:
            want = int(rv_text)
        except ValueError:
            raise ApiError(400, f"invalid resource version: {rv_text}")
        exact = match == "Exact" or (not match and limit > 0)
        with self.store.cond:
            deadline = time.monotonic() + 3
            while want > self.store.rv and time.monotonic() < deadline:
                self.store.cond.wait(deadline - time.monotonic())
            if want > self.store.rv:
                raise ApiError(504, f"Too large resource version: {want}, current: {self.store.rv}", "Timeout",
                               details={"causes": [{"reason": "ResourceVersionTooLarge",
                                                    "message": "Too large resource version"}],
                                        "retryAfterSeconds": 1})
            if not exact:
                return None
            if want < self.store.compacted_rv:
                raise ApiError(410, "The resourceVersion for the provided list is too old.", "Expired")
            return want

    def _list(self, rt: ResourceType, ns: str | None):
        labels = LabelSelector(self.query.get("labelSelector"))
        fields = FieldSelector(self.query.get("fieldSelector"), rt)
        try:
            limit = int(self.query.get("limit") or 0)
        except ValueError:
            raise ApiError(400, "invalid limit")
        start_after = None
        if self.query.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(self.query["continue"] + "=="))
                at_rv, start_after = int(token["rv"]), tuple(token["start"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "continue key is not valid: invalid token")
            if at_rv < self.store.compacted_rv:
                raise ApiError(410, "The provided continue parameter is too old to display a consistent list "
                                    "result. You can start a new list without the continue parameter.", "Expired")
        else:
            at_rv = self._requested_rv(self.query.get("resourceVersionMatch"), limit)
        try:
            items, rv = self.store.list(rt, ns, labels, fields, at_rv)
        except ApiError as e:  # history compacted while paging
            raise ApiError(410, e.message, "Expired")
        if start_after is not None:
            items = [o for o in items if _key(o) > start_after]
        cont, remaining = None, None
        if limit > 0 and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            cont = base64.urlsafe_b64encode(json.dumps(
                {"rv": rv, "start": list(_key(items[-1]))}).encode()).decode().rstrip("=")
        self._send(200, self._list_body(rt, items, rv, cont, remaining))

    # ---- watch ----

    def _watch(self, rt: ResourceType, ns: str | None, name: str | None):
        labels = LabelSelector(self.query.get("labelSelector"))
        fields = FieldSelector(self.query.get("fieldSelector"), rt)
        if name:
            fields.reqs.append(("metadata.name", True, name))
        bookmarks = self.query.get("allowWatchBookmarks") in ("1", "true", "True")
        initial = self.query.get("sendInitialEvents") in ("1", "true", "True")
        cap = self.server.watch_timeout_max
        try:
            timeout = min(float(self.query.get("timeoutSeconds") or 0) or cap, cap)
        except ValueError:
            raise ApiError(400, "invalid timeoutSeconds")
        rv_text = self.query.get("resourceVersion", "")
        table = self._table_version()
        faults = self.server.faults
        with faults.lock:
            epoch = faults.epoch
        store = self.store

        def visible(obj):
            return obj is not None and (ns is None or obj["metadata"].get("namespace") == ns) and \
                labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)

        pending: list = []
        with store.cond:
            if rv_text in ("", "0") or initial:
                cursor = store.rv
                for obj in sorted(store.objects.get(rt.gr, {}).values(), key=_key):
                    if visible(obj):
                        pending.append(("ADDED", obj))
            else:
                try:
                    cursor = int(rv_text)
                except ValueError:
                    raise ApiError(400, f"invalid resource version: {rv_text}")
                try:
                    store.events_after(cursor)
                    expired = None
                except ApiError as e:
                    expired = e
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        def write(type_, obj):
            if table and type_ in ("ADDED", "MODIFIED", "DELETED"):
                obj = self._table(rt, [obj], table, {"resourceVersion": obj["metadata"]["resourceVersion"]})
            elif type_ != "ERROR":
                obj = self._out(rt, obj)
            data = (json.dumps({"type": type_, "object": obj}) + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def bookmark(rv, initial_end=False):
            meta: dict = {"resourceVersion": str(rv)}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            write("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta})

        with faults.lock:
            faults.open_watches += 1
        try:
            if not (rv_text in ("", "0") or initial) and expired is not None:
                write("ERROR", expired.status())
                return self._end_chunks()
            for t, o in pending:
                write(t, o)
            if initial and bookmarks:
                bookmark(cursor, initial_end=True)
            interval = self.server.bookmark_interval
            now = time.monotonic()
            deadline, next_bookmark = now + timeout, now + interval
            while True:
                out: list = []
                with store.cond:
                    while True:
                        if faults.epoch != epoch:
                            return self._abort()
                        try:
                            for ev in store.events_after(cursor):
                                if ev.gr != rt.gr:
                                    continue
                                was, now_vis = visible(ev.prev), visible(ev.obj)
                                if ev.type == "ADDED" and now_vis:
                                    out.append(("ADDED", ev.obj))
                                elif ev.type == "MODIFIED":
                                    if was and now_vis:
                                        out.append(("MODIFIED", ev.obj))
                                    elif now_vis:
                                        out.append(("ADDED", ev.obj))
                                    elif was:  # left the selection: DELETED with the old content
                                        gone = copy.deepcopy(ev.prev)
                                        gone["metadata"]["resourceVersion"] = str(ev.rv)
                                        out.append(("DELETED", gone))
                                elif ev.type == "DELETED" and was:
                                    out.append(("DELETED", ev.obj))
                        except ApiError as e:  # this watcher fell behind a compaction
                            out = [("ERROR", e.status())]
                            break
                        cursor = store.rv
                        now = time.monotonic()
                        if out or now >= deadline or (bookmarks and now >= next_bookmark):
                            break
                        wait = deadline - now
                        if bookmarks:
                            wait = min(wait, next_bookmark - now)
                        store.cond.wait(min(wait, 0.5))
                        if self._client_gone():
                            return self._abort()
                for t, o in out:
                    write(t, o)
                if out and out[0][0] == "ERROR":
                    return self._end_chunks()
                now = time.monotonic()
                if bookmarks and now >= next_bookmark:
                    bookmark(cursor)
                    next_bookmark = now + interval
                if now >= deadline:
                    return self._end_chunks()
        except (BrokenPipeError, ConnectionError, ssl.SSLError, socket.timeout, OSError):
            self.close_connection = True
        finally:
            with faults.lock:
                faults.open_watches -= 1

    def _client_gone(self) -> bool:
        """A watch client never sends anything; readable means it hung up."""
        try:
            readable, _, _ = select.select([self.request], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _abort(self):
        self.close_connection = True
        _shutdown_socket(self.request)

    # ---- discovery and OpenAPI ----

    def _discovery(self, path: str, segs: list):
        store = self.store
        if path == "/version":
            return self._send(200, SERVER_VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            return self._send(200, b"ok", content_type="text/plain; charset=utf-8")
        if segs[:1] == ["openapi"]:
            return self._openapi(segs)
        with store.cond:
            types = list(store.types.values())
        if path == "/api":
            host = f"127.0.0.1:{self.server.server_address[1]}"
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs":
                                    [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        groups = self._groups(types)
        if path == "/apis":
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                    "groups": [g for g in groups if g["name"]]})
        if segs[0] == "apis" and len(segs) == 2:
            g = next((g for g in groups if g["name"] == segs[1]), None)
            if g is None:
                raise ApiError(404, "the server could not find the requested resource", details={})
            return self._send(200, {"kind": "APIGroup", "apiVersion": "v1", **g})
        group, version = ("", segs[1]) if segs[0] == "api" else (segs[1], segs[2])
        rts = [t for t in types if t.group == group and t.version == version]
        if not rts:
            raise ApiError(404, "the server could not find the requested resource", details={})
        resources = []
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        for t in sorted(rts, key=lambda t: t.plural):
            r = {"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
                 "verbs": verbs}
            if t.short_names:
                r["shortNames"] = t.short_names
            if t.categories:
                r["categories"] = t.categories
            resources.append(r)
            if t.status:
                resources.append({"name": f"{t.plural}/status", "singularName": "", "namespaced": t.namespaced,
                                  "kind": t.kind, "verbs": ["get", "patch", "update"]})
        return self._send(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                "groupVersion": f"{group}/{version}" if group else version,
                                "resources": resources})

    @staticmethod
    def _groups(types: list) -> list:
        by_group: dict[str, set] = {}
        for t in types:
            by_group.setdefault(t.group, set()).add(t.version)
        order = lambda g: (BUILTIN_GROUP_ORDER.index(g) if g in BUILTIN_GROUP_ORDER else len(BUILTIN_GROUP_ORDER), g)
        out = []
        for g in sorted(by_group, key=order):
            versions = sorted(by_group[g], key=version_priority, reverse=True)
            gv = [{"groupVersion": f"{g}/{v}" if g else v, "version": v} for v in versions]
            out.append({"name": g, "versions": gv, "preferredVersion": gv[0]})
        return out

    def _openapi(self, segs: list):
        if segs[:2] != ["openapi", "v3"]:
            raise ApiError(404, "the server could not find the requested resource", details={})
        docs = self.server.openapi_docs()
        if len(segs) == 2:
            index = {"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={h}"}
                               for gv, (h, _) in sorted(docs.items())}}
            return self._send(200, index)
        gv = "/".join(segs[2:])
        if gv not in docs:
            raise ApiError(404, "the server could not find the requested resource", details={})
        h, body = docs[gv]
        cache = "public, immutable" if self.query.get("hash") == h else "no-cache, private"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("Etag", f'"{h}"')
        self.end_headers()
        self.wfile.write(body)

    # ---- admin / fault injection ----

    def _admin(self, action: str):
        faults, store = self.server.faults, self.store
        q = self.query
        if action == "stats" and self.command == "GET":
            with faults.lock:
                stats = {"requests": dict(faults.by_verb), "byResource": copy.deepcopy(faults.by_resource),
                         "openWatches": faults.open_watches, "connections": len(faults.connections),
                         "injectedFailures": faults.injected,
                         "pendingFailures": [vars(r) for r in faults.rules]}
            with store.cond:
                stats.update({"resourceVersion": str(store.rv), "compactedResourceVersion": str(store.compacted_rv),
                              "historySize": len(store.history),
                              "objects": sum(len(o) for o in store.objects.values())})
            return self._send(200, stats)
        if self.command != "POST":
            return self._send(405, ApiError(405, "use POST").status())
        if action == "fail-next":
            try:
                rule = FailRule(int(q.get("count", "1")), int(q.get("code", "500")), q.get("path", ""),
                                q.get("verb", ""))
            except ValueError:
                return self._send(400, ApiError(400, "count and code must be integers").status())
            with faults.lock:
                faults.rules.append(rule)
            return self._send(200, {"ok": True, "rule": vars(rule)})
        if action == "compact":
            store.compact()
            return self._send(200, {"ok": True, "compactedResourceVersion": str(store.compacted_rv)})
        if action in ("drop-watches", "restart"):
            with faults.lock:
                faults.epoch += 1
                watches = faults.open_watches
                others = [c for c in faults.connections if c is not self.request]
            with store.cond:
                store.cond.notify_all()
            if action == "restart" and q.get("compact") in ("1", "true"):
                store.compact()
            if action == "restart":
                # Every connection goes, as when the process dies; data and the
                # resourceVersion counter survive, like etcd behind a restarted apiserver.
                # The others go before the answer: a client that has the answer finds them cut.
                for c in others:
                    _shutdown_socket(c)
                self.close_connection = True
                self._send(200, {"ok": True, "droppedConnections": len(others) + 1},
                           headers={"Connection": "close"})
                return
            return self._send(200, {"ok": True, "droppedWatches": watches})
        return self._send(404, ApiError(404, f"unknown fault endpoint {action}").status())


class FakeAPIServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, store: Store, token: str, ssl_context: ssl.SSLContext | None,
                 bookmark_interval: float, watch_timeout_max: float, verbose: bool):
        super().__init__(address, Handler)
        self.store = store
        self.token = token
        self.ssl_context = ssl_context
        self.bookmark_interval = bookmark_interval
        self.watch_timeout_max = watch_timeout_max
        self.verbose = verbose
        self.faults = Faults()
        self._openapi_cache: tuple[int, dict] | None = None

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ssl.SSLError, ValueError)):
            return  # clients hanging up, failed handshakes: not our problem
        super().handle_error(request, client_address)

    def openapi_docs(self) -> dict:
        """{"apis/<g>/<v>" | "api/v1": (hash, json bytes)}, rebuilt when CRDs change."""
        with self.store.cond:
            gen = self.store.registry_gen
            if self._openapi_cache and self._openapi_cache[0] == gen:
                return self._openapi_cache[1]
            types = list(self.store.types.values())
        docs = {}
        for gv, rts in _group_by_gv(types).items():
            body = json.dumps(openapi_doc(rts), sort_keys=True).encode()
            docs[gv] = (hashlib.sha512(body).hexdigest().upper(), body)
        self._openapi_cache = (gen, docs)
        return docs


def _group_by_gv(types: list) -> dict:
    out: dict[str, list] = {}
    for t in types:
        out.setdefault(f"apis/{t.group}/{t.version}" if t.group else f"api/{t.version}", []).append(t)
    return out


def _def_name(rt: ResourceType) -> str:
    if rt.crd:
        return ".".join(reversed(rt.group.split("."))) + f".{rt.version}.{rt.kind}"
    if rt.group == "apiextensions.k8s.io":
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{rt.version}.{rt.kind}"
    return f"io.k8s.api.{(rt.group or 'core').split('.')[0]}.{rt.version}.{rt.kind}"


OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def openapi_doc(rts: list) -> dict:
    """An OpenAPI v3 document for one group-version: the paths kubectl inspects (PATCH
    operations tagged with x-kubernetes-group-version-kind and a fieldValidation query
    parameter) and a schema per kind. Built-ins advertise no strategic merge patch content
    type, so kubectl computes their patches from its compiled-in types."""
    paths: dict = {}
    schemas: dict = {
        OBJECT_META: {"type": "object", "properties": {
            "name": {"type": "string"}, "namespace": {"type": "string"}, "generateName": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
            "uid": {"type": "string"}, "resourceVersion": {"type": "string"}, "generation": {"type": "integer"},
            "creationTimestamp": {"type": "string", "format": "date-time"},
            "deletionTimestamp": {"type": "string", "format": "date-time"},
            "finalizers": {"type": "array", "items": {"type": "string", "default": ""}},
            "ownerReferences": {"type": "array", "items": {"type": "object"}}}},
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status": {"type": "object"},
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch": {"type": "object"},
    }
    query = lambda name, t="string": {"name": name, "in": "query", "schema": {"type": t, "uniqueItems": True}}
    write_params = [query("dryRun"), query("fieldManager"), query("fieldValidation")]
    for rt in rts:
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        ref = {"$ref": f"#/components/schemas/{_def_name(rt)}"}
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        body = {"content": {"*/*": {"schema": ref}}, "required": True}
        patch_types = ["application/json-patch+json", "application/merge-patch+json",
                       "application/apply-patch+yaml"]
        patch_body = {"content": {t: {"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}}
                                  for t in patch_types}, "required": True}

        def op(action, opid, params=(), request=None):
            o = {"operationId": f"{opid}{rt.kind}", "x-kubernetes-action": action,
                 "x-kubernetes-group-version-kind": gvk, "parameters": list(params), "responses": ok}
            if request:
                o["requestBody"] = request
            return o

        base = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
        coll = base + ("/namespaces/{namespace}" if rt.namespaced else "") + f"/{rt.plural}"
        item = coll + "/{name}"
        paths[coll] = {"get": op("list", "list"), "post": op("post", "create", write_params, body),
                       "delete": op("deletecollection", "deleteCollection")}
        paths[item] = {"get": op("get", "read"), "put": op("put", "replace", write_params, body),
                       "patch": op("patch", "patch", write_params + [query("force", "boolean")], patch_body),
                       "delete": op("delete", "delete")}
        if rt.status:
            paths[item + "/status"] = {
                "get": op("get", "readStatus"), "put": op("put", "replaceStatus", write_params, body),
                "patch": op("patch", "patchStatus", write_params + [query("force", "boolean")], patch_body)}
        if rt.schema is not None:
            schema = copy.deepcopy(rt.schema)
            props = schema.setdefault("properties", {})
            props["apiVersion"] = {"type": "string"}
            props["kind"] = {"type": "string"}
            props["metadata"] = {"allOf": [{"$ref": f"#/components/schemas/{OBJECT_META}"}]}
        else:
            schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                      "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                     "metadata": {"allOf": [{"$ref": f"#/components/schemas/{OBJECT_META}"}]}}}
        schema["x-kubernetes-group-version-kind"] = [gvk]
        schemas[_def_name(rt)] = schema
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": schemas}}


# --------------------------------------------------------------------------------------
# TLS material and kubeconfig.
# --------------------------------------------------------------------------------------

def make_certs(directory: str, tool: str = "auto") -> tuple[str, str, str]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost. Reused if present."""
    ca, crt, key = (os.path.join(directory, n) for n in ("ca.crt", "tls.crt", "tls.key"))
    if all(os.path.exists(p) for p in (ca, crt, key)):
        return ca, crt, key
    if tool in ("auto", "cryptography"):
        try:
            _certs_with_cryptography(ca, crt, key)
            return ca, crt, key
        except ImportError:
            if tool == "cryptography":
                raise
    _certs_with_openssl(directory, ca, crt, key)
    return ca, crt, key


def _certs_with_cryptography(ca_path: str, crt_path: str, key_path: str) -> None:
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-apiserver-ca")])
    usage = dict(content_commitment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            key_encipherment=False, **usage), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         key_encipherment=True, **usage), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    with open(ca_path, "wb") as f:
        f.write(ca_cert.public_bytes(pem))
    with open(crt_path, "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(key_path, 0o600)


def _certs_with_openssl(directory: str, ca: str, crt: str, key: str) -> None:
    openssl = shutil.which("openssl")
    if not openssl:
        raise SystemExit("fake-apiserver: --tls needs the 'cryptography' package or the openssl command")
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        ca_key, csr, ext = (os.path.join(tmp, n) for n in ("ca.key", "tls.csr", "ext.cnf"))
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        run = lambda *a: subprocess.run([openssl, *a], check=True, capture_output=True)
        run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "365", "-subj", "/CN=fake-apiserver-ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        run("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=fake-apiserver")
        run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial",
            str(random.getrandbits(63)), "-out", crt, "-days", "365", "-extfile", ext)
        os.chmod(key, 0o600)


def write_kubeconfig(path: str, url: str, token: str, ca_path: str | None) -> None:
    cluster: dict = {"server": url}
    if ca_path:
        with open(ca_path, "rb") as f:
            cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "fake", "cluster": cluster}],
        "users": [{"name": "fake-user", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake-user", "namespace": "default"}}],
        "current-context": "fake",
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def main(argv: list | None = None) -> None:
    p = argparse.ArgumentParser(description="A fake Kubernetes API server for tests.")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")
    p.add_argument("--token", required=True, help="the bearer token clients must send")
    p.add_argument("--state-dir", help="keeps TLS material and state.json (data survives a process restart)")
    p.add_argument("--kubeconfig-out", help="write a kubeconfig for this server here")
    p.add_argument("--watch-timeout-max", type=float, default=300, help="cap (and default) for timeoutSeconds")
    p.add_argument("--bookmark-interval", type=float, default=1.0, help="seconds between BOOKMARK events")
    p.add_argument("--history-size", type=int, default=10000, help="watch events kept before compaction")
    p.add_argument("--auto-create-namespaces", action="store_true",
                   help="create missing namespaces on demand instead of answering 404 as a real server does")
    p.add_argument("--loadbalancer-ip", default="127.0.0.1",
                   help="address given to LoadBalancer Services (empty: leave them pending)")
    p.add_argument("--cert-tool", choices=("auto", "cryptography", "openssl"), default="auto")
    p.add_argument("--keep-running-without-parent", action="store_true",
                   help="by default the server exits when the process that started it is gone")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args(argv)

    state_dir = args.state_dir
    if state_dir:
        os.makedirs(state_dir, exist_ok=True)
    store = Store(state_dir, args.history_size, args.auto_create_namespaces, args.loadbalancer_ip or None)
    ctx, ca = None, None
    if args.tls:
        cert_dir = state_dir or tempfile.mkdtemp(prefix="fake-apiserver-")
        ca, crt, key = make_certs(cert_dir, args.cert_tool)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        ctx.set_alpn_protocols(["http/1.1"])
    server = FakeAPIServer((args.host, args.port), store, args.token, ctx, args.bookmark_interval,
                           args.watch_timeout_max, args.verbose)
    url = f"{'https' if args.tls else 'http'}://{args.host}:{server.server_address[1]}"
    if args.kubeconfig_out:
        write_kubeconfig(args.kubeconfig_out, url, args.token, ca)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not args.keep_running_without_parent:
        # A test runner that dies without stopping us must not leave a server behind.
        parent = os.getppid()

        def watch_parent():
            while os.getppid() == parent:
                time.sleep(1)
            stop()

        threading.Thread(target=watch_parent, daemon=True).start()
    print(f"fake-apiserver listening on {url}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()


if __name__ == "__main__":
    main()
