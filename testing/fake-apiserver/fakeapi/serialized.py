"""The JSON text of stored objects, made once per object version and shared by every list
page and watch stream that sends it, as the kube-apiserver's watch cache does (it keeps each
object's serialization beside the object, `cachingObject`, so N lists and watchers of the same
object encode it once).

Correctness rests on two rules of the store: a stored object is never mutated (every write
stores a new dict), and every write replaces (`put`) or drops (`invalidate`) what is cached
for the key it changes. Objects are encoded as they are written, in the view a watch of their
own version sends (other views, e.g. a built-in's typed-list item, on first use). Entries are
also checked by identity, so an entry made from an older dict (a list that raced a write) is
never served for the newer one."""

from __future__ import annotations

import json
import threading
from typing import Callable


class SerializedCache:
    def __init__(self):
        self._lock = threading.Lock()
        # id(object) -> (the object, {view: its JSON text}); the object is kept, so its id
        # cannot be reused while the entry lives.
        self._by_id: dict[int, tuple[dict, dict[str, bytes]]] = {}
        # (group, plural, namespace, name) -> id of the object cached for that key
        self._by_key: dict[tuple, int] = {}
        self.hits = 0
        self.misses = 0

    def invalidate(self, gr: tuple, key: tuple) -> None:
        """Forgets every serialization of one object (called on each write of it)."""
        with self._lock:
            old = self._by_key.pop(gr + key, None)
            if old is not None:
                self._by_id.pop(old, None)

    def put(self, gr: tuple, key: tuple, obj: dict, view: str) -> None:
        """Encodes a newly stored object in one view, in place of whatever was cached for its key
        (the write path: encoded once, then sent by every list and watch)."""
        data = json.dumps(obj).encode()
        with self._lock:
            old = self._by_key.get(gr + key)
            if old is not None and old != id(obj):
                self._by_id.pop(old, None)
            self._by_key[gr + key] = id(obj)
            self._by_id[id(obj)] = (obj, {view: data})

    def get_many(self, gr: tuple, objs: list, view: str, render: Callable[[dict], object],
                 stored: dict) -> list:
        """The JSON text of `render(obj)` for each object, from the cache when that very object
        was serialized in this view before. `stored` is the store's dict of the resource (key to
        object): only the version it holds now is kept (an older or deleted one is encoded but
        not cached, and an entry is served only for the object it was made from)."""
        by_id = self._by_id
        with self._lock:
            out = []
            for obj in objs:
                entry = by_id.get(id(obj))
                out.append(entry[1].get(view) if entry is not None and entry[0] is obj else None)
        todo = [i for i, text in enumerate(out) if text is None]
        with self._lock:
            self.hits += len(objs) - len(todo)
            self.misses += len(todo)
        if not todo:
            return out
        for i in todo:
            out[i] = json.dumps(render(objs[i])).encode()
        with self._lock:
            for i in todo:
                obj = objs[i]
                meta = obj["metadata"]
                key = (meta.get("namespace", ""), meta["name"])
                # A write since would have replaced the stored object (and invalidated the key).
                if stored.get(key) is not obj:
                    continue
                entry = by_id.get(id(obj))
                if entry is None or entry[0] is not obj:
                    entry = (obj, {})
                    by_id[id(obj)] = entry
                    previous = self._by_key.get(gr + key)
                    if previous is not None and previous != id(obj):
                        by_id.pop(previous, None)  # an older version, cached before its write was invalidated
                    self._by_key[gr + key] = id(obj)
                entry[1][view] = out[i]
        return out

    def stats(self) -> dict:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "objects": len(self._by_id)}
