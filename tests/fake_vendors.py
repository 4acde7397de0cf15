"""Local stand-ins for the vendors' cloud APIs (which cannot exist here).
Each checks the exact request shape the real one expects (auth, path,
method, JSON fields) and answers as the vendor documents, including its
rate-limit and server errors. They keep what a real CRM would keep, so a
test can count notes per record: a duplicate shows.

Scripted trouble, per server:
  fail(n, status, body, headers)  the next n requests get this answer
  commit_then_fail(n)             the next n requests are carried out, and
                                  then answered 502 (the sender cannot know
                                  it worked: the case idempotency is for)
  down = True                     every request gets a 503 with no body
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ShapeError(AssertionError):
    pass


def need(cond, what: str) -> None:
    if not cond:
        raise ShapeError(what)


class FakeServer:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict]] = []
        self.shape_errors: list[str] = []
        self._script: list[tuple] = []
        self._commit_fail = 0
        self.down = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _do(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = server._handle(self.command, self.path,
                                                       self.headers, raw)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _do

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, n: int, status: int, body=b"", headers=None) -> None:
        with self.lock:
            self._script += [(status, body, headers or {})] * n

    def commit_then_fail(self, n: int) -> None:
        with self.lock:
            self._commit_fail += n

    def _handle(self, method, path, headers, raw):
        # headers: the request's (case-insensitive, as HTTP says)
        with self.lock:
            self.requests.append((method, path, headers))
            if self.down:
                return 503, b"", {}
            if self._script:
                return self._script.pop(0)
            commit_fail = self._commit_fail > 0
            if commit_fail:
                self._commit_fail -= 1
            try:
                body = json.loads(raw) if raw else None
                result = self.handle(method, path, headers, body, raw)
            except ShapeError as e:
                self.shape_errors.append(f"{method} {path}: {e}")
                return self.bad_request(str(e))
            except ValueError as e:
                self.shape_errors.append(f"{method} {path}: not JSON ({e})")
                return self.bad_request("not JSON")
        if commit_fail:
            return 502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}
        return result

    def bad_request(self, message):
        return 400, {"error": message}, {}


class WebhookReceiver(FakeServer):
    """A retailer's endpoint: checks the signature over the exact body and
    the timestamp, keeps one entry per Idempotency-Key."""

    def __init__(self, secret: bytes):
        super().__init__()
        self.secret = secret
        self.entries: dict[str, dict] = {}
        self.deliveries = 0

    def handle(self, method, path, headers, body, raw):
        need(method == "POST" and path == "/hook", "POST /hook expected")
        need(headers.get("Content-Type") == "application/json", "Content-Type")
        ts = headers.get("X-LB-Timestamp", "")
        need(ts.isdigit() and abs(time.time() - int(ts)) < 300, "timestamp missing or stale")
        want = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + raw,
                                    hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, headers.get("X-LB-Signature", "")):
            return 401, {"error": "bad signature"}, {}
        need(headers.get("Idempotency-Key") == body["id"], "Idempotency-Key is the record id")
        self.deliveries += 1
        self.entries[body["id"]] = body
        return 204, b"", {}


HUBSPOT_RATE_LIMIT = {"status": "error", "message": "You have reached your secondly limit.",
                      "errorType": "RATE_LIMIT", "correlationId": "c0ffee00-0000-4000-8000-000000000000",
                      "policyName": "SECONDLY"}


class HubSpotFake(FakeServer):
    """CRM API v3 as used by forward/hubspot.py: contacts batch upsert by a
    unique property, notes create/patch/search. Keeps notes; never dedupes."""

    def __init__(self, token: str, id_property: str = "lb_loyalty_id"):
        super().__init__()
        self.token = token
        self.id_property = id_property
        self.contacts: dict[str, str] = {}   # loyalty id -> contact id
        self.notes: dict[str, dict] = {}     # note id -> {"body", "ts", "contact"}
        self.ids = itertools.count(1001)

    def handle(self, method, path, headers, body, raw):
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"status": "error", "message": "Authentication credentials not found.",
                         "category": "INVALID_AUTHENTICATION",
                         "correlationId": "c0ffee00-0000-4000-8000-000000000001"}, {}
        need(headers.get("Content-Type") == "application/json", "Content-Type")
        if method == "POST" and path == "/crm/v3/objects/contacts/batch/upsert":
            need(isinstance(body.get("inputs"), list) and len(body["inputs"]) == 1, "inputs")
            inp = body["inputs"][0]
            need(inp.get("idProperty") == self.id_property, "idProperty")
            need(isinstance(inp.get("id"), str) and inp["id"], "id")
            need(inp.get("properties", {}).get(self.id_property) == inp["id"], "properties")
            new = inp["id"] not in self.contacts
            if new:
                self.contacts[inp["id"]] = str(next(self.ids))
            return 200, {"status": "COMPLETE", "results": [
                {"id": self.contacts[inp["id"]], "new": new,
                 "properties": {self.id_property: inp["id"]}}]}, {}
        if method == "POST" and path == "/crm/v3/objects/notes":
            props = body.get("properties", {})
            need(str(props.get("hs_timestamp", "")).isdigit(), "hs_timestamp (ms)")
            need(isinstance(props.get("hs_note_body"), str), "hs_note_body")
            assoc = body.get("associations")
            need(isinstance(assoc, list) and len(assoc) == 1, "associations")
            need(assoc[0]["types"] == [{"associationCategory": "HUBSPOT_DEFINED",
                                        "associationTypeId": 202}], "association type 202")
            contact = assoc[0]["to"]["id"]
            need(contact in self.contacts.values(), "associated contact exists")
            nid = str(next(self.ids))
            self.notes[nid] = {"body": props["hs_note_body"], "ts": props["hs_timestamp"],
                               "contact": contact}
            return 201, {"id": nid, "properties": props, "archived": False}, {}
        m = re.fullmatch(r"/crm/v3/objects/notes/(\d+)", path)
        if method == "PATCH" and m:
            if m.group(1) not in self.notes:
                return 404, {"status": "error", "message": "resource not found",
                             "category": "OBJECT_NOT_FOUND"}, {}
            self.notes[m.group(1)]["body"] = body["properties"]["hs_note_body"]
            return 200, {"id": m.group(1), "properties": body["properties"]}, {}
        if method == "POST" and path == "/crm/v3/objects/notes/search":
            f = body["filterGroups"][0]["filters"][0]
            need(f["propertyName"] == "hs_note_body" and f["operator"] == "CONTAINS_TOKEN",
                 "search filter")
            hits = [nid for nid, n in self.notes.items()
                    if f["value"] in re.split(r"[^A-Za-z0-9]+", n["body"])]
            return 200, {"total": len(hits), "results": [
                {"id": h, "properties": {"hs_note_body": self.notes[h]["body"]}}
                for h in hits[:body.get("limit", 10)]]}, {}
        return 404, {"status": "error", "message": f"no route {method} {path}"}, {}

    def bad_request(self, message):
        return 400, {"status": "error", "message": message, "category": "VALIDATION_ERROR"}, {}

    def notes_for(self, marker: str) -> list[str]:
        return [nid for nid, n in self.notes.items() if marker in n["body"]]


BITRIX_LIMIT = {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}


class Bitrix24Fake(FakeServer):
    """Bitrix24 REST through an inbound webhook: /rest/<user>/<secret>/<method>.json."""

    def __init__(self, secret: str, field: str = "UF_CRM_LB_LOYALTY_ID"):
        super().__init__()
        self.secret = secret
        self.field = field
        self.contacts: dict[int, dict] = {}
        self.comments: dict[int, dict] = {}
        self.ids = itertools.count(1)

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/rest/1/{self.secret}/"

    def _ok(self, result):
        return 200, {"result": result, "time": {"start": time.time(), "duration": 0.01}}, {}

    def handle(self, method, path, headers, body, raw):
        m = re.fullmatch(r"/rest/1/([^/]+)/([a-z.]+)\.json", path)
        if not m:
            return 404, {"error": "NOT_FOUND", "error_description": "Not found"}, {}
        if m.group(1) != self.secret:
            return 401, {"error": "INVALID_CREDENTIALS",
                         "error_description": "Invalid request credentials"}, {}
        need(method == "POST", "POST")
        name = m.group(2)
        if name == "crm.contact.list":
            need(list(body["filter"]) == [self.field], "filter by the loyalty field")
            lid = body["filter"][self.field]
            return self._ok([{"ID": str(cid)} for cid, c in self.contacts.items()
                             if c[self.field] == lid])
        if name == "crm.contact.add":
            fields = body["fields"]
            need(fields.get(self.field), "the loyalty field is set")
            cid = next(self.ids)
            self.contacts[cid] = fields
            return self._ok(cid)
        if name == "crm.timeline.comment.add":
            f = body["fields"]
            need(f.get("ENTITY_TYPE") == "contact" and isinstance(f.get("ENTITY_ID"), int),
                 "ENTITY_TYPE contact, ENTITY_ID integer")
            need(f["ENTITY_ID"] in self.contacts, "the contact exists")
            need(isinstance(f.get("COMMENT"), str) and f["COMMENT"], "COMMENT")
            cid = next(self.ids)
            self.comments[cid] = dict(f)
            return self._ok(cid)
        if name == "crm.timeline.comment.list":
            f = body["filter"]
            need(f.get("ENTITY_TYPE") == "contact" and "ENTITY_ID" in f, "required filter")
            return self._ok([{"ID": str(i), "COMMENT": c["COMMENT"]}
                             for i, c in self.comments.items()
                             if c["ENTITY_ID"] == f["ENTITY_ID"]])
        if name == "crm.timeline.comment.update":
            if body.get("id") not in self.comments:
                return 400, {"error": "NOT_FOUND", "error_description": "Not found"}, {}
            self.comments[body["id"]]["COMMENT"] = body["fields"]["COMMENT"]
            return self._ok(True)
        return 404, {"error": "ERROR_METHOD_NOT_FOUND",
                     "error_description": "Method not found!"}, {}

    def bad_request(self, message):
        return 400, {"error": "INVALID_ARG_VALUE", "error_description": message}, {}

    def comments_for(self, marker: str) -> list[int]:
        return [i for i, c in self.comments.items() if marker in c["COMMENT"]]


class CloudFake(FakeServer):
    """A cloud reporting endpoint: bearer token, JSON aggregates."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token
        self.pushes: list[dict] = []

    def handle(self, method, path, headers, body, raw):
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"error": "unauthorized"}, {}
        need(method == "POST" and path == "/v1/aggregates", "POST /v1/aggregates")
        self.pushes.append(body)
        return 200, {"ok": True}, {}


class TelegramFake(FakeServer):
    """The Bot API's sendMessage: POST /bot<token>/sendMessage, JSON with
    chat_id and text; answers {"ok": true, "result": Message}, or a 429 with
    parameters.retry_after as Telegram does."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token
        self.messages: list[dict] = []

    def handle(self, method, path, headers, body, raw):
        if path != f"/bot{self.token}/sendMessage":
            return 401 if path.endswith("/sendMessage") else 404, {
                "ok": False, "error_code": 401, "description": "Unauthorized"}, {}
        need(method == "POST" and headers.get("Content-Type") == "application/json", "POST JSON")
        need(isinstance(body.get("chat_id"), (int, str)) and body["chat_id"], "chat_id")
        need(isinstance(body.get("text"), str) and 0 < len(body["text"]) <= 4096, "text 1-4096")
        self.messages.append(body)
        return 200, {"ok": True, "result": {"message_id": len(self.messages),
                                            "chat": {"id": body["chat_id"]},
                                            "date": int(time.time()), "text": body["text"]}}, {}


TELEGRAM_429 = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1}}
