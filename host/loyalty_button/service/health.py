"""What is broken in a store, from the host's status, for the banner at the
top of the dashboard: each problem a code the page words in the manager's
language (with what to do), how bad it is, and its figures. Computed here
and not in the page, so the rules are tested and the same for every
reader of GET /api/status.

A problem is something a manager should act on today: a destination (the
CRM) that receives nothing, a panel that is not there to ask, a refused
catalogue edit, the panels' broker down. The page adds one of its own: the
host itself not answering (its numbers are then stale)."""

from __future__ import annotations

import time

# A destination with records waiting longer than this is not receiving.
STUCK_AFTER_S = 600
# Receipts that found their panel offline, as a share of all since the host
# started, above which the response rate misses shoppers who were never asked.
OFFLINE_SHARE = 0.05
OFFLINE_MIN_RECEIPTS = 10


def problems(status: dict, now_ms: int | None = None) -> list[dict]:
    """[{"code", "severity" ("error" | "warning"), "params"}], the worst
    first."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    out = []
    if status.get("broker") == "down":
        out.append(_p("broker_down", "error"))
    cat = status.get("catalogue") or {}
    if cat.get("error"):
        out.append(_p("catalogue_refused", "error", error=cat["error"]))
    if cat.get("warnings"):
        out.append(_p("catalogue_texts_cut", "warning", n=len(cat["warnings"]),
                      first=cat["warnings"][0]))
    for name, d in sorted((status.get("forwarding") or {}).items()):
        oldest = d.get("oldest_pending_ms")
        waiting_s = (now_ms - oldest) // 1000 if oldest else 0
        if d.get("dead"):
            # Each dead letter's own error is in the dead letters' table.
            out.append(_p("destination_dead", "error", dest=name, dead=d["dead"]))
        if d.get("pending") and waiting_s >= STUCK_AFTER_S:
            out.append(_p("destination_stuck", "error", dest=name, pending=d["pending"],
                          minutes=waiting_s // 60, error=d.get("last_error") or ""))
    panels = status.get("panels") or {}
    fleet = status.get("fleet") or {}
    for till, panel in sorted((status.get("tills") or {}).items()):
        state = panels.get(panel) or (fleet.get(panel) or {}).get("state")
        if state is None:
            out.append(_p("panel_never_connected", "error", panel=panel, till=till))
        elif state != "online":
            out.append(_p("panel_offline", "warning", panel=panel, till=till, state=state))
    counters = status.get("counters") or {}
    receipts = counters.get("receipts", 0)
    offline = counters.get("outcome_panel_offline", 0)
    if receipts >= OFFLINE_MIN_RECEIPTS and offline / receipts >= OFFLINE_SHARE:
        out.append(_p("receipts_not_asked", "warning", pct=round(100 * offline / receipts),
                      offline=offline, receipts=receipts))
    out.sort(key=lambda p: p["severity"] != "error")
    return out


def _p(code: str, severity: str, **params) -> dict:
    return {"code": code, "severity": severity, "params": params}
