"""Discovery (`/version`, `/api`, `/apis`, group-versions) in the legacy format, and
OpenAPI v3 (`/openapi/v3`, one document per group-version, cached until a CRD changes)."""

from __future__ import annotations

import copy
import hashlib
import json

from .common import ApiError
from .resources import BUILTIN_GROUP_ORDER, ResourceType, version_priority
from .store import Store


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


class OpenAPIDocs:
    """The OpenAPI v3 documents, rebuilt when the registry changes (a CRD comes or goes)."""

    def __init__(self, store: Store):
        self.store = store
        self._cache: tuple[int, dict] | None = None

    def docs(self) -> dict:
        """{"apis/<g>/<v>" | "api/v1": (hash, json bytes)}."""
        with self.store.cond:
            gen = self.store.registry_gen
            if self._cache and self._cache[0] == gen:
                return self._cache[1]
            types = list(self.store.types.values())
        docs = {}
        for gv, rts in _group_by_gv(types).items():
            body = json.dumps(openapi_doc(rts), sort_keys=True).encode()
            docs[gv] = (hashlib.sha512(body).hexdigest().upper(), body)
        self._cache = (gen, docs)
        return docs


class DiscoveryMixin:
    """Handler methods that answer discovery and OpenAPI requests."""

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
        docs = self.server.openapi.docs()
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
