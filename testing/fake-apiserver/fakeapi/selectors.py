"""Label and field selectors of list, watch and deletecollection requests."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .common import ApiError

if TYPE_CHECKING:
    from .resources import ResourceType


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
