"""Bitrix24 (REST through an inbound webhook URL, which carries the secret:
https://<portal>/rest/<user>/<secret>/). The shopper is a contact found by
a user field holding the loyalty id (default UF_CRM_LB_LOYALTY_ID, created
once at install; docs/forwarding.md) or made with it; each record is a
comment on the contact's timeline (crm.timeline.comment.add). Bitrix24
answers a burst with HTTP 503 QUERY_LIMIT_EXCEEDED (a leaky bucket: 2
requests/s on most plans) and a method over its time budget with 429;
both are retried later. A record sent before is updated by its comment id;
after an attempt whose outcome is unknown the contact's comments are
searched for its marker first."""

from __future__ import annotations

import json

from . import crm_note, http
from .adapter import OneByOne


class Bitrix24(OneByOne):
    def __init__(self, dest):
        self.dest = dest
        self.base = dest.url if dest.url.endswith("/") else dest.url + "/"
        self.contacts: dict[str, str] = {}

    def _call(self, method: str, params: dict) -> object:
        resp = http.request("POST", f"{self.base}{method}.json", json.dumps(params).encode(),
                            {"Content-Type": "application/json"}, self.dest.timeout_s)
        body = {}
        try:
            body = json.loads(resp.body or b"{}")
        except ValueError:
            pass
        error = body.get("error") if isinstance(body, dict) else None
        if resp.status == 503 or error == "QUERY_LIMIT_EXCEEDED":
            raise http.Retry(f"bitrix24 {method}: QUERY_LIMIT_EXCEEDED", after_s=1.0)
        if resp.status in (401, 403) or error in ("INVALID_CREDENTIALS", "expired_token",
                                                  "NO_AUTH_FOUND", "insufficient_scope"):
            raise http.Retry(f"bitrix24 {method}: {error or resp.status}: check the webhook "
                             f"URL and that it has the crm scope")
        http.check(resp, f"bitrix24 {method}")
        if error:
            raise http.Refused(f"bitrix24 {method}: {error}: {body.get('error_description')}")
        if not isinstance(body, dict) or "result" not in body:
            raise http.Retry(f"bitrix24 {method}: unexpected answer {resp.body[:200]!r}")
        return body["result"]

    def _contact(self, lid: str) -> str:
        if lid not in self.contacts:
            field = self.dest.id_property
            found = self._call("crm.contact.list", {"filter": {field: lid}, "select": ["ID"]})
            if found:
                self.contacts[lid] = str(found[0]["ID"])
            else:
                new = self._call("crm.contact.add", {"fields": {
                    "NAME": "Loyalty card", "LAST_NAME": lid, field: lid,
                    "SOURCE_DESCRIPTION": "Loyalty Button"}})
                self.contacts[lid] = str(new)
        return self.contacts[lid]

    def send(self, payload: dict, attempts: int, ref: str | None) -> str | None:
        lid = payload.get("loyalty_id")
        if not lid:
            return "skipped: not a member"
        comment = crm_note.text(payload)
        contact = self._contact(lid)
        if ref is None and attempts > 0:
            mark = crm_note.marker(payload["id"])
            for c in self._call("crm.timeline.comment.list", {
                    "filter": {"ENTITY_ID": int(contact), "ENTITY_TYPE": "contact"},
                    "select": ["ID", "COMMENT"]}) or []:
                if mark in (c.get("COMMENT") or ""):
                    ref = str(c["ID"])
                    break
        if ref and not ref.startswith("skipped"):
            self._call("crm.timeline.comment.update", {"id": int(ref),
                                                       "fields": {"COMMENT": comment}})
            return ref
        new = self._call("crm.timeline.comment.add", {"fields": {
            "ENTITY_ID": int(contact), "ENTITY_TYPE": "contact", "COMMENT": comment}})
        return str(new)
