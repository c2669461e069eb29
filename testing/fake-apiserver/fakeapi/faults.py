"""Fault injection, statistics and the `/_fake/` endpoints (no authentication):
fail-next, clear-failures, drop-watches, compact, restart and stats."""

from __future__ import annotations

import copy
import socket
import threading
from dataclasses import dataclass

from .common import ApiError


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
        self.list_seconds = 0.0          # time spent answering lists (from the request to the last byte sent)
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


def shutdown_socket(sock) -> None:
    """Cut a connection at the TCP level (no TLS close_notify, no final chunk)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class AdminMixin:
    """The handler of `/_fake/<action>`."""

    def _admin(self, action: str):
        faults, store = self.server.faults, self.store
        q = self.query
        if action == "stats" and self.command == "GET":
            with faults.lock:
                stats = {"requests": dict(faults.by_verb), "byResource": copy.deepcopy(faults.by_resource),
                         "openWatches": faults.open_watches, "connections": len(faults.connections),
                         "injectedFailures": faults.injected, "listSeconds": round(faults.list_seconds, 6),
                         "pendingFailures": [vars(r) for r in faults.rules]}
            with store.cond:
                stats.update({"resourceVersion": str(store.rv), "compactedResourceVersion": str(store.compacted_rv),
                              "historySize": len(store.history),
                              "objects": sum(len(o) for o in store.objects.values())})
            stats["serializedCache"] = store.serialized.stats()
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
        if action == "clear-failures":
            with faults.lock:
                cleared = len(faults.rules)
                faults.rules.clear()
            return self._send(200, {"ok": True, "cleared": cleared})
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
                    shutdown_socket(c)
                self.close_connection = True
                self._send(200, {"ok": True, "droppedConnections": len(others) + 1},
                           headers={"Connection": "close"})
                return
            return self._send(200, {"ok": True, "droppedWatches": watches})
        return self._send(404, ApiError(404, f"unknown fault endpoint {action}").status())
