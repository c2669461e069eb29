"""Protobuf request bodies. kubectl's `create <kind>` generators send built-ins as
`application/vnd.kubernetes.protobuf`: the "k8s\0" magic, then a runtime.Unknown envelope
{typeMeta=1 {apiVersion=1, kind=2}, raw=2}. Only the kinds those generators produce most
are described here; others answer 415."""

from __future__ import annotations

import base64
from typing import Any

from .common import ApiError


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
