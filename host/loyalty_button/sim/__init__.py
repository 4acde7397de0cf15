"""The developer's kit: a simulated store without hardware. Panels running
the real firmware under the MicroPython unix port (`panel`) or with their
LVGL screens (`lvpanel`), a private Mosquitto (`broker`) and PostgreSQL
(`pg_server`), the store host on a thread or as a process (`runner`), the
host's side of the panel protocol for tests (`panel_link`), the simulated
store with its POS and shoppers (`store`), the demo, the screen renderer
and sample camera frames for the probe (`probe_frames`)."""
