# The app's side of updates (docs/ota.md): the status's `ota` field, the
# `update` and `health` commands, the trial window and the boot watch. The
# download itself is lbpanel/ota.py, loaded only when an update arrives;
# the slots and boot.json are lbboot's. Loaded only on a panel that main.py
# booted through lbboot.
import asyncio

import lbboot
from lbpanel import VERSION, log
from lbpanel.flow import ADVERTS

_TAG = "ota"


class Updates:
    def __init__(self, app, boot):
        self.app = app
        self.slot, self.mode = boot
        self.busy = False
        self.ota = {"slot": self.slot or "base", "mode": self.mode,
                    "state": {"trial": "trial", "safe": "safe"}.get(self.mode, "ok")}
        failure = lbboot.read()["failure"]
        if failure and self.mode != "trial":
            # Reported until the next update: the host learns why it came back.
            self.ota["state"] = "rolled_back"
            self.ota["version"] = failure["version"]
            self.ota["reason"] = failure["reason"]
            log.warning(_TAG, "update %s was rolled back: %s"
                        % (failure["version"], failure["reason"]))
        if self.mode == "trial":
            asyncio.create_task(self._trial_window())
        else:
            asyncio.create_task(self._boot_watch())

    def command(self, msg):
        if msg["cmd"] == "health":
            asyncio.create_task(self._health(msg))
        elif self.app.reset is None:
            self._refused(msg, "this panel cannot restart itself")
        elif self.mode == "trial":
            self._refused(msg, "an update is on trial; confirm or roll it back first")
        elif not self.busy:
            self.busy = True
            asyncio.create_task(self._update(msg))

    def _set(self, state, **fields):
        ota = {"slot": self.ota["slot"], "mode": self.mode, "state": state}
        for key in fields:
            ota[key] = fields[key]
        self.ota = ota

    def _refused(self, msg, why):
        log.warning(_TAG, "update %s refused: %s" % (msg.get("version"), why))
        self.app.counters.add("update_refused")
        # seq: which command this answers (the host tells a refusal of its
        # own command from an older one still in the status).
        self._set("failed", version=msg.get("version"), reason=why, seq=msg.get("seq"))
        self.app.status_soon()

    async def _report(self, state, **fields):
        self._set(state, **fields)
        if self.app.client.up:
            await self.app.publish_status()

    async def _update(self, msg):
        from lbpanel.ota import Replayed, Updater, UpdateError
        app = self.app
        try:
            # The download runs beside the shopper's screens; only the
            # switch and the restart wait for the adverts.
            await self._report("downloading", version=msg["version"], pct=0)
            updater = Updater(app.settings["ota.key"], app.settings["board"], self._report,
                              safe=self.mode == "safe", board_info=app.board,
                              store=app.settings["store"], panel=app.settings["panel_id"],
                              running=VERSION)
            slot = await updater.run(msg)
            while app.flow.state != ADVERTS:
                await asyncio.sleep(0.2)
            updater.switch(slot, msg["version"])
        except Replayed:
            log.info(_TAG, "update %s: this command was taken already" % msg["version"])
            self.busy = False
            return
        except UpdateError as e:
            self._refused(msg, str(e))
            self.busy = False
            return
        except Exception as e:  # a bug or a full flash: the running app stays
            log.exception(_TAG, "update failed", e)
            self._refused(msg, "%s: %s" % (type(e).__name__, e))
            self.busy = False
            return
        # The host is told (it stops asking this panel); a question already
        # on its way still gets a quiet second on the adverts to arrive and
        # be answered before the restart.
        await self._report("switching", version=msg["version"])
        quiet = 0
        while quiet < 10:
            await asyncio.sleep(0.1)
            quiet = quiet + 1 if app.flow.state == ADVERTS else 0
        await app.restart()

    async def _health(self, msg):
        """The host's health check: answered with a status; on trial, once
        that status reached the broker, the update is confirmed, if the
        check is signed by the store for this panel and this version and
        is newer than the update's command (not one replayed)."""
        if self.ota["state"] != "trial":
            self.app.status_soon()
            return
        from lbpanel import ota
        settings = self.app.settings
        seq = msg.get("seq", 0)
        if not (ota.signature_ok(settings["ota.key"] or "",
                                 ota.health_text(settings["store"], settings["panel_id"],
                                                 VERSION, seq), msg.get("sig", ""))
                and seq > ota.last_seq()):
            log.warning(_TAG, "a health check not signed for this trial: not confirmed")
            self.app.counters.add("health_refused")
            self.app.status_soon()
            return
        await self.app.publish_status()
        if not self.app.client.up:
            return  # the host asks again
        lbboot.confirm()
        log.info(_TAG, "update %s confirmed" % VERSION)
        self.mode = "normal"
        self._set("ok")
        await self.app.publish_status()

    async def _boot_watch(self):
        """A normal boot is good once it has run a while; safe mode gives
        the app another chance after a while without an update."""
        if self.mode == "normal":
            await asyncio.sleep(lbboot.GOOD_AFTER_S)
            lbboot.healthy()
            return
        await asyncio.sleep(lbboot.SAFE_FOR_S)
        if not self.busy and self.app.reset is not None:
            log.warning(_TAG, "safe mode for %d s without an update: trying the app again"
                        % lbboot.SAFE_FOR_S)
            lbboot.leave_safe()
            await self.app.restart()

    async def _trial_window(self):
        await asyncio.sleep(self.app.settings["ota.trial_s"])
        if self.ota["state"] == "trial" and self.app.reset is not None:
            why = "not confirmed by the host within %d s" % self.app.settings["ota.trial_s"]
            log.error(_TAG, "%s: going back" % why)
            lbboot.failed(why)
            await self.app.restart()
