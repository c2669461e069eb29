"""HTTP: the server, connection handling, authentication, routing of API paths to the
store, and lists with their resourceVersion and paging semantics. Watches, discovery,
rendering and the `/_fake/` endpoints are mixins from their own modules."""

from __future__ import annotations

import base64
import http.server
import json
import socket
import ssl
import sys
import time
import urllib.parse
import uuid
from typing import Any

import yaml

from .common import ApiError, FieldError, invalid, log
from .discovery import DiscoveryMixin, OpenAPIDocs
from .faults import AdminMixin, Faults
from .protobuf import decode_protobuf_object
from .rendering import RenderMixin
from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector
from .store import Store, object_key
from .watch import WatchMixin


PUBLIC_PATHS = {"/version", "/healthz", "/livez", "/readyz"}


class Handler(WatchMixin, DiscoveryMixin, RenderMixin, AdminMixin, http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver"
    timeout = 120  # idle keep-alive connections

    # TCP_NODELAY: a response is written as headers, then body; with Nagle's algorithm the body
    # waits for the client's delayed ACK of the headers (40 ms on Linux) on every request.
    disable_nagle_algorithm = True

    # ---- connection lifecycle ----

    def setup(self):
        ctx = self.server.ssl_context
        if ctx is not None:
            self.request.settimeout(10)
            self.request = ctx.wrap_socket(self.request, server_side=True)  # handshake in this thread
        super().setup()
        with self.server.faults.lock:
            self.server.faults.connections.add(self.request)

    def finish(self):
        with self.server.faults.lock:
            self.server.faults.connections.discard(self.request)
        try:
            super().finish()
        except OSError:
            pass
        try:
            self.request.close()
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if self.server.verbose:
            log(fmt % args)

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # ---- plumbing ----

    @property
    def store(self) -> Store:
        return self.server.store

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code: int, payload: Any, headers: dict | None = None, warnings: list | None = None,
              content_type: str = "application/json") -> None:
        body = payload if isinstance(payload, bytes) else (json.dumps(payload) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        for w in warnings or []:
            self.send_header("Warning", '299 - ' + json.dumps(w))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self):
        try:
            self.raw_body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        url = urllib.parse.urlsplit(self.path)
        self.url_path = url.path
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if url.path.startswith("/_fake/"):
                return self._admin(url.path[len("/_fake/"):])
            if url.path not in PUBLIC_PATHS:
                auth = self.headers.get("Authorization", "")
                if auth != f"Bearer {self.server.token}":
                    raise ApiError(401, "Unauthorized")
            self._route()
        except ApiError as e:
            self._send(e.code, e.status(), e.headers)
        except (BrokenPipeError, ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # a bug in the fake: say so like the real server would
            log(f"internal error on {self.command} {self.path}: {e!r}")
            import traceback
            traceback.print_exc()
            try:
                self._send(500, ApiError(500, f"fake-apiserver internal error: {e!r}").status())
            except OSError:
                self.close_connection = True

    def _maybe_fail(self, verb: str) -> None:
        rule = self.server.faults.take(self.url_path, verb)
        if rule:
            headers = {"Retry-After": "1"} if rule.code == 429 else {}
            details = {"retryAfterSeconds": 1} if rule.code == 429 else None
            raise ApiError(rule.code, f"injected failure ({rule.code})", details=details, headers=headers)

    # ---- routing ----

    def _route(self):
        path, method = self.url_path.rstrip("/") or "/", self.command
        segs = [s for s in path.split("/") if s]
        if not segs:
            return self._send(200, {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3",
                                              "/readyz", "/version"]})
        if path in PUBLIC_PATHS or path in ("/api", "/apis") or segs[:1] == ["openapi"] or \
                (segs[:1] == ["api"] and len(segs) <= 2) or (segs[:1] == ["apis"] and len(segs) <= 3):
            self.server.faults.count("discovery", None)
            self._maybe_fail("get")
            if method != "GET":
                raise ApiError(405, "the server does not allow this method on the requested resource")
            return self._discovery(path, segs)
        if segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        elif segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource", details={})
        watch = self.query.get("watch") in ("1", "true", "True")
        if rest[:1] == ["watch"]:  # legacy /watch/ paths
            rest, watch = rest[1:], True
        ns = None
        if rest[:1] == ["namespaces"] and len(rest) >= 3 and not (
                group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "the server could not find the requested resource", details={})
        plural, name = rest[0], (rest[1] if len(rest) > 1 else None)
        sub = rest[2] if len(rest) > 2 else None
        rt = self.store.type(group, version, plural)
        if rt is None or (ns is not None and not rt.namespaced) or (
                name is not None and rt.namespaced and ns is None) or (sub and not (sub == "status" and rt.status)):
            raise ApiError(404, "the server could not find the requested resource", details={})
        verb = {"GET": "watch" if watch else ("get" if name else "list"), "POST": "create", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete" if name else "deletecollection"}[method]
        self.server.faults.count(verb, rt.qualified)
        self._maybe_fail(verb)
        if verb == "watch":
            return self._watch(rt, ns, name)
        if verb == "list":
            started = time.monotonic()
            try:
                return self._list(rt, ns)
            finally:
                with self.server.faults.lock:
                    self.server.faults.list_seconds += time.monotonic() - started
        if verb == "get":
            with self.store.cond:
                obj = self.store.get(rt, ns, name)
            return self._send(200, self._render(rt, obj))
        dry_run = self.query.get("dryRun") == "All"
        fv = self.query.get("fieldValidation") or "Warn"
        if fv not in ("Strict", "Warn", "Ignore"):
            raise ApiError(400, f"fieldValidation parameter unsupported: {fv}")
        warnings: list = []
        if verb == "create":
            if name is not None or (rt.namespaced and ns is None):
                raise ApiError(405, "the server does not allow this method on the requested resource")
            obj = self.store.create(rt, ns, self._body(), fv, dry_run, warnings)
            return self._send(201, self._out(rt, obj), warnings=warnings)
        if verb == "update":
            obj = self.store.replace(rt, ns, name, self._body(), sub, fv, dry_run, warnings)
            return self._send(200, self._out(rt, obj), warnings=warnings)
        if verb == "patch":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            patch_type = {"application/merge-patch+json": "merge",
                          "application/strategic-merge-patch+json": "strategic",
                          "application/json-patch+json": "json",
                          "application/apply-patch+yaml": "apply"}.get(ctype)
            if patch_type is None:
                raise ApiError(415, "the body of the request was in an unknown format - accepted media types "
                                    "include: application/json-patch+json, application/merge-patch+json, "
                                    "application/apply-patch+yaml", "UnsupportedMediaType")
            if patch_type == "apply" and not self.query.get("fieldManager"):
                raise invalid(rt, name, [FieldError("fieldManager", "FieldValueRequired",
                                                    "Required value: is required for apply patch")])
            obj, created = self.store.patch(rt, ns, name, patch_type, self._body(), sub, fv, dry_run, warnings)
            return self._send(201 if created else 200, self._out(rt, obj), warnings=warnings)
        options = self._body() if self.raw_body.strip() else {}
        if not isinstance(options, dict):
            raise ApiError(400, "DeleteOptions must be an object")
        dry_run = dry_run or "All" in (options.get("dryRun") or [])
        if verb == "delete":
            obj = self.store.delete(rt, ns, name, options, dry_run)
            return self._send(200, self._out(rt, obj))
        # deletecollection
        labels = LabelSelector(self.query.get("labelSelector"))
        fields = FieldSelector(self.query.get("fieldSelector"), rt)
        items, _ = self.store.list(rt, ns, labels, fields, None)
        deleted = []
        for item in items:
            try:
                deleted.append(self.store.delete(rt, item["metadata"].get("namespace"), item["metadata"]["name"],
                                                 options, dry_run))
            except ApiError as e:
                if e.code != 404:
                    raise
        return self._send(200, self._list_body(rt, deleted, self.store.rv, None, None))

    # ---- request bodies and lists (resourceVersion semantics, paging) ----

    def _body(self) -> Any:
        ctype = (self.headers.get("Content-Type") or "").lower()
        if "protobuf" in ctype:
            try:
                return decode_protobuf_object(self.raw_body)
            except (ValueError, IndexError, UnicodeDecodeError) as e:
                raise ApiError(400, f"the body of the request could not be decoded: {e}")
        try:
            text = self.raw_body.decode("utf-8")
            return yaml.safe_load(text) if "yaml" in ctype else json.loads(text)
        except (ValueError, yaml.YAMLError) as e:
            raise ApiError(400, f"the body of the request could not be decoded: {e}")

    def _requested_rv(self, match: str | None, limit: int) -> int | None:
        """Returns the resourceVersion to serve (None: the newest), per the list semantics."""
        rv_text = self.query.get("resourceVersion", "")
        if match and not rv_text:
            raise ApiError(400, "resourceVersionMatch is forbidden unless resourceVersion is provided")
        if match not in (None, "", "Exact", "NotOlderThan"):
            raise ApiError(400, f"resourceVersionMatch: unsupported value {match!r}")
        if rv_text in ("", "0"):
            return None
        try:
            want = int(rv_text)
        except ValueError:
            raise ApiError(400, f"invalid resource version: {rv_text}")
        exact = match == "Exact" or (not match and limit > 0)
        with self.store.cond:
            deadline = time.monotonic() + 3
            while want > self.store.rv and time.monotonic() < deadline:
                self.store.cond.wait(deadline - time.monotonic())
            if want > self.store.rv:
                raise ApiError(504, f"Too large resource version: {want}, current: {self.store.rv}", "Timeout",
                               details={"causes": [{"reason": "ResourceVersionTooLarge",
                                                    "message": "Too large resource version"}],
                                        "retryAfterSeconds": 1})
            if not exact:
                return None
            if want < self.store.compacted_rv:
                raise ApiError(410, "The resourceVersion for the provided list is too old.", "Expired")
            return want

    def _list(self, rt: ResourceType, ns: str | None):
        labels = LabelSelector(self.query.get("labelSelector"))
        fields = FieldSelector(self.query.get("fieldSelector"), rt)
        try:
            limit = int(self.query.get("limit") or 0)
        except ValueError:
            raise ApiError(400, "invalid limit")
        start_after = None
        if self.query.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(self.query["continue"] + "=="))
                at_rv, start_after = int(token["rv"]), tuple(token["start"])
                if len(start_after) != 2 or not all(isinstance(part, str) for part in start_after):
                    raise ValueError("start is not a key")
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "continue key is not valid: invalid token")
            if at_rv < self.store.compacted_rv:
                raise ApiError(410, "The provided continue parameter is too old to display a consistent list "
                                    "result. You can start a new list without the continue parameter.", "Expired")
        else:
            at_rv = self._requested_rv(self.query.get("resourceVersionMatch"), limit)
        try:
            items, rv = self.store.list(rt, ns, labels, fields, at_rv, start_after)
        except ApiError as e:  # history compacted while paging
            raise ApiError(410, e.message, "Expired")
        cont, remaining = None, None
        if limit > 0 and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            cont = base64.urlsafe_b64encode(json.dumps(
                {"rv": rv, "start": list(object_key(items[-1]))}).encode()).decode().rstrip("=")
        self._send(200, self._list_json(rt, items, rv, cont, remaining))


class FakeAPIServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, store: Store, token: str, ssl_context: ssl.SSLContext | None,
                 bookmark_interval: float, watch_timeout_max: float, verbose: bool):
        super().__init__(address, Handler)
        self.store = store
        self.token = token
        self.ssl_context = ssl_context
        self.bookmark_interval = bookmark_interval
        self.watch_timeout_max = watch_timeout_max
        self.verbose = verbose
        self.faults = Faults()
        self.openapi = OpenAPIDocs(store)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ssl.SSLError, ValueError)):
            return  # clients hanging up, failed handshakes: not our problem
        super().handle_error(request, client_address)
