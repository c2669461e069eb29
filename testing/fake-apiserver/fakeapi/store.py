"""The store: objects, the resourceVersion counter, the event history the watches read,
the registry of served types (built-ins and CRDs), persistence to state.json, and the
write operations (create, replace, patch, delete) with their preconditions."""

from __future__ import annotations

import bisect
import copy
import json
import os
import random
import string
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from .admission import AdmissionMixin
from .common import ApiError, FieldError, conflict, invalid, not_found, now_rfc3339
from .patches import json_patch, merge_patch, strategic_merge_patch
from .resources import AGE_COLUMN, BUILTINS, ResourceType
from .selectors import FieldSelector, LabelSelector
from .serialized import SerializedCache


@dataclass
class Event:
    rv: int
    gr: tuple
    type: str       # ADDED / MODIFIED / DELETED
    obj: dict       # object after the change (never mutated afterwards)
    prev: dict | None


def object_key(obj: dict) -> tuple:
    m = obj["metadata"]
    return (m.get("namespace", ""), m["name"])


class Store(AdmissionMixin):
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
        # The JSON text of stored objects, for lists and watches (invalidated on every write).
        self.serialized = SerializedCache()
        self._next_ip = 1
        self._next_node_port = 30000
        for rt in BUILTINS:
            self.types[(rt.group, rt.version, rt.plural)] = rt
        if not self._load():
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self.create(self.type("", "v1", "namespaces"), None,
                            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, "Ignore")

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
            key = object_key(ev.obj)
            if ev.type == "ADDED":
                objs.pop(key, None)
            else:
                objs[key] = ev.prev
        return objs

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
                self.objects.setdefault((e["group"], e["plural"]), {})[object_key(e["object"])] = e["object"]
        return True

    def _commit(self, rt: ResourceType, obj: dict, prev: dict | None) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects.setdefault(rt.gr, {})[object_key(obj)] = obj
        self.serialized.put(rt.gr, object_key(obj), obj, "object:" + obj.get("apiVersion", ""))
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
        self.objects.get(rt.gr, {}).pop(object_key(obj), None)
        self.serialized.invalidate(rt.gr, object_key(obj))
        self._record(rt.gr, "DELETED", gone, obj)
        self._persist()
        return gone

    def serialize(self, gr: tuple, objs: list, view: str, render) -> list:
        """The JSON text of `render(obj)` for each stored object, encoded once per version and view."""
        return self.serialized.get_many(gr, objs, view, render, self.objects.get(gr, {}))

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
            if object_key(obj) in self.objects.get(rt.gr, {}):
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
             at_rv: int | None, start_after: tuple | None = None) -> tuple[list, int]:
        """The objects of one resource at `at_rv` (None: now) in key order, those after the key
        `start_after` only (a continued list), filtered by namespace and selectors."""
        with self.cond:
            objs = self.snapshot(rt.gr, at_rv)
            rv = self.rv if at_rv is None else at_rv
        pairs = sorted(objs.items())
        if start_after is not None:
            pairs = pairs[bisect.bisect_right(pairs, tuple(start_after), key=lambda p: p[0]):]
        if ns is None and not labels.reqs and not fields.reqs:
            return [o for _, o in pairs], rv
        items = [o for k, o in pairs
                 if (ns is None or k[0] == ns) and labels.matches(o["metadata"].get("labels"))
                 and fields.matches(o)]
        return items, rv
