"""HubSpot (CRM API v3, private app token): the shopper is a contact found
or made by a unique contact property holding the loyalty id (default
`lb_loyalty_id`, created once at install; docs/forwarding.md), and each
record is a note on the contact's timeline (association type 202, note to
contact). HubSpot has no idempotency key, so a record sent before (its
note id is kept) is updated with PATCH, and after an attempt whose outcome
is unknown the note is searched for by its marker before one is created."""

from __future__ import annotations

import json

from . import crm_note, http
from .adapter import OneByOne

NOTE_TO_CONTACT = 202  # HUBSPOT_DEFINED association type id


class HubSpot(OneByOne):
    def __init__(self, dest):
        self.dest = dest
        self.base = dest.url.rstrip("/")
        self.contacts: dict[str, str] = {}  # loyalty id -> contact id

    def _call(self, method: str, path: str, body: dict | None, what: str) -> dict:
        headers = {"Authorization": f"Bearer {self.dest.token}",
                   "Content-Type": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        resp = http.request(method, self.base + path, data, headers, self.dest.timeout_s)
        if resp.status in (401, 403):
            # A wrong or revoked token: keep the records and keep trying (with
            # backoff) so that fixing the token is all it takes.
            raise http.Retry(f"hubspot {what}: HTTP {resp.status}: check the private "
                             f"app token and its scopes")
        return http.check(resp, f"hubspot {what}").json() or {}

    def _contact(self, lid: str) -> str:
        if lid not in self.contacts:
            prop = self.dest.id_property
            out = self._call("POST", "/crm/v3/objects/contacts/batch/upsert",
                             {"inputs": [{"idProperty": prop, "id": lid,
                                          "properties": {prop: lid}}]}, "contact upsert")
            try:
                self.contacts[lid] = str(out["results"][0]["id"])
            except (KeyError, IndexError, TypeError):
                raise http.Retry(f"hubspot contact upsert: unexpected answer {out!r:.200}")
        return self.contacts[lid]

    def _find(self, mark: str) -> str | None:
        out = self._call("POST", "/crm/v3/objects/notes/search", {
            "filterGroups": [{"filters": [{"propertyName": "hs_note_body",
                                           "operator": "CONTAINS_TOKEN", "value": mark}]}],
            "properties": ["hs_note_body"], "limit": 1}, "note search")
        results = out.get("results") or []
        return str(results[0]["id"]) if results else None

    def send(self, payload: dict, attempts: int, ref: str | None) -> str | None:
        lid = payload.get("loyalty_id")
        if not lid:
            return "skipped: not a member"  # nobody to attach it to
        props = {"hs_timestamp": str(payload.get("asked_ms") or payload.get("closed_ms")),
                 "hs_note_body": crm_note.text(payload)}
        if ref is None and attempts > 0:
            ref = self._find(crm_note.marker(payload["id"]))
        if ref and not ref.startswith("skipped"):
            self._call("PATCH", f"/crm/v3/objects/notes/{ref}", {"properties": props},
                       "note update")
            return ref
        contact = self._contact(lid)
        out = self._call("POST", "/crm/v3/objects/notes", {
            "properties": props,
            "associations": [{"to": {"id": contact},
                              "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                         "associationTypeId": NOTE_TO_CONTACT}]}]},
            "note create")
        if "id" not in out:
            raise http.Retry(f"hubspot note create: no id in the answer {out!r:.200}")
        return str(out["id"])
