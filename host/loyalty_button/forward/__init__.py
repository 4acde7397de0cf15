"""What leaves the store: closed records forwarded through one durable
outbox per destination (docs/forwarding.md), the alerts to the store's staff
(docs/alerts.md), and the retention of raw records."""
