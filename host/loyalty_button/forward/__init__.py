"""Forwarding closed records out of the store: one durable outbox per
destination (docs/forwarding.md)."""
