"""Watch fan-out: one chunked stream per watch request. Replays the history from a
resourceVersion (or sends the current objects as ADDED), then follows the store's event
history under its condition variable, filtering by namespace and selectors (an object
leaving the selection is sent as DELETED), with bookmarks, server-side timeouts, 410 after
compaction, and a cut connection when a fault drops the watches."""

from __future__ import annotations

import copy
import json
import select
import socket
import ssl
import time

from .common import ApiError
from .faults import shutdown_socket
from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector
from .store import object_key


class WatchMixin:
    """Handler methods that serve a watch."""

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
                for obj in sorted(store.objects.get(rt.gr, {}).values(), key=object_key):
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
            elif type_ in ("ADDED", "MODIFIED"):
                # The same text as json.dumps of the event, the object's part from the cache.
                text = store.serialize(rt.gr, [obj], "object:" + rt.api_version, lambda o: self._out(rt, o))[0]
                data = b'{"type": "%s", "object": %s}\n' % (type_.encode(), text)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                return
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
        shutdown_socket(self.request)
