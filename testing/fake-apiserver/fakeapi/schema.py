"""Structural schemas of custom resources (pruning, defaulting, OpenAPI v3 value
validation with the CEL rules of cel.py) and the metadata checks every kind gets."""

from __future__ import annotations

import copy
import json
import re
from typing import TYPE_CHECKING, Any

from .cel import cel_rule
from .common import FieldError, fmt_value, join_path, json_type

if TYPE_CHECKING:
    from .resources import ResourceType


MAX_ANNOTATIONS_BYTES = 256 * 1024


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
        check = cel_rule(text)
        if check is None:
            continue
        if not check(node):
            at = path + rule.get("fieldPath", "") if rule.get("fieldPath") else path
            errs.append(FieldError(at, rule.get("reason", "FieldValueInvalid"),
                                   f'Invalid value: "{json_type(node)}": {rule.get("message") or "failed rule: " + text}'))


def _passes(node: Any, schema: dict, path: str) -> bool:
    errs: list = []
    validate(node, schema, path, errs)
    return not errs


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
