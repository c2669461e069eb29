"""How objects leave the server: at the requested version, as typed lists, or as the
Tables `kubectl get` asks for (printer columns, JSONPath, kubectl's AGE format)."""

from __future__ import annotations

import datetime
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .resources import ResourceType


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


class RenderMixin:
    """Handler methods that turn stored objects into response bodies."""

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

    def _items_json(self, rt: ResourceType, objs: list) -> list:
        """The list items' JSON text, from the store's cache of serialized objects."""
        if rt.crd:  # as a watch sends them: one text for both
            return self.store.serialize(rt.gr, objs, "object:" + rt.api_version, lambda o: self._out(rt, o))
        # Typed lists of built-ins carry no kind/apiVersion per item.
        return self.store.serialize(rt.gr, objs, "typed-item",
                                    lambda o: {k: v for k, v in o.items() if k not in ("kind", "apiVersion")})

    def _list_json(self, rt: ResourceType, items: list, rv: int, cont: str | None, remaining: int | None) -> bytes:
        """The response body of a list: the same text as `json.dumps(_list_body(...))`, with each
        item's text taken from the cache instead of encoding the whole list again."""
        if self._table_version():
            return (json.dumps(self._list_body(rt, items, rv, cont, remaining)) + "\n").encode()
        meta: dict = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = remaining
        head = json.dumps({"kind": rt.kind + "List", "apiVersion": rt.api_version, "metadata": meta})
        return b"".join((head[:-1].encode(), b', "items": [', b", ".join(self._items_json(rt, items)),
                         b"]}\n"))

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
