"""Patches: RFC 7386 merge patch, strategic merge patch (the subset kubectl sends) and
RFC 6902 JSON patch."""

from __future__ import annotations

import copy
import json
from typing import Any

from .common import ApiError


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
