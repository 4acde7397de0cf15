"""The store service: what runs on the store's host (a Raspberry Pi).

- `host`: the service wired together, and `serve()`;
- `concentrator`: each transaction from receipt to feedback record;
- `pos` + `receipt`: the POS intake (UDP datagram, HTTP) and its checks;
- `catalogue`: the questions, the rules that pick one, the till map;
- `fleet`: what the host knows of its panels;
- `records`: the store's SQLite database of feedback records;
- `reports`, `report_cli`, `dashboard`: NPS and the rest, for managers;
- `config`: concentrator.yaml.

What leaves the store is in `forward/`, the adverts in `adverts/`, the
emotion probe in `probe/`. Nothing here imports `sim/` or `bench/`."""
