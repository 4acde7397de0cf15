"""The chain's central service (docs/central.md): stores report to it over
HTTPS, managers compare stores in its dashboard, reports go out by e-mail,
BI tools read its views. Stateless workers over the chain's PostgreSQL."""
