# The panel's persistent outbox: every answer is on flash before it is sent,
# and leaves flash only when the host says it has committed it (an "ack"
# message, docs/protocol.md). A broker's PUBACK is not enough: a broker
# killed before it saved the message loses it. So a reboot, a power cut, a
# broker or a host outage loses nothing; a resend carries the same answer
# id, so the host counts it once and acknowledges it again.
#
# One file per answer ("0000000042.<answer id>.json"): writing a new file
# and renaming it into place is atomic on LittleFS and POSIX, and removing
# one answer never rewrites the others; the answer id in the name is how an
# ack finds it. A file that does not parse is moved aside to ".bad" (kept
# for an installer to retrieve, never silently deleted).
import os

from lbpanel import log, protocol

_TAG = "outbox"
_SUFFIX = ".json"
_FRESH_MAX = 4


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class Outbox:
    def __init__(self, directory, max_entries, counters):
        self.dir = directory
        self.max_entries = max_entries
        self.counters = counters
        if not exists(directory):
            os.mkdir(directory)
        self.names = []
        # The payloads of the last few answers written in this boot: they
        # were checked when written, so sending them needs no flash read and
        # no second parse. Few, because a long outage must not fill the heap.
        self._fresh = {}
        self.next_seq = 1
        self._scan()

    def _path(self, name):
        return self.dir + "/" + name

    def _scan(self):
        highest = 0
        for name in os.listdir(self.dir):
            stem = name.split(".")[0]
            if name.endswith(".tmp"):
                # A write cut short before its rename: that answer never
                # became durable and was never sent, so nobody counted it.
                os.remove(self._path(name))
                self.counters.add("outbox_partial_discarded")
                log.warning(_TAG, "removed partial write %s (power cut mid-write?)" % name)
                continue
            if stem.isdigit():
                highest = max(highest, int(stem))
                if name.endswith(_SUFFIX):
                    self.names.append(self._named_by_id(name))
        self.names.sort()
        self.next_seq = highest + 1
        if self.names:
            log.info(_TAG, "%d answer(s) waiting from before the restart" % len(self.names))

    def _named_by_id(self, name):
        """A file written before acks existed ("0000000042.json") is renamed
        to carry its answer id, as every new one does, so an ack finds it
        by name. One that cannot be read keeps its name; oldest()
        quarantines it."""
        if name.count(".") == 2:
            return name
        try:
            with open(self._path(name), "rb") as f:
                aid = protocol.loads(f.read())["id"]
            named = "%s.%s%s" % (name.split(".")[0], aid, _SUFFIX)
            os.rename(self._path(name), self._path(named))
            return named
        except Exception as e:
            log.warning(_TAG, "cannot read the answer id of %s: %s" % (name, e))
            return name

    def depth(self):
        return len(self.names)

    def add(self, answer):
        """Store an answer message durably. Returns False (logged and
        counted) when it cannot be stored; what is stored stays stored."""
        if len(self.names) >= self.max_entries:
            self.counters.add("outbox_full")
            log.error(_TAG, "full (%d answers waiting, limit %d): answer %s for session %s "
                      "not stored; is the broker reachable?"
                      % (len(self.names), self.max_entries, answer.get("id"), answer.get("session")))
            return False
        try:
            data = protocol.encode(answer)
        except protocol.ProtocolError as e:
            self.counters.add("outbox_rejected")
            log.error(_TAG, "answer %s not stored, it is invalid: %s" % (answer.get("id"), e))
            return False
        name = "%010d.%s%s" % (self.next_seq, answer["id"], _SUFFIX)
        tmp = self._path("%010d.tmp" % self.next_seq)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, self._path(name))
        except OSError as e:
            self.counters.add("outbox_write_failed")
            log.error(_TAG, "cannot write answer %s to flash: %s" % (answer.get("id"), e))
            try:
                os.remove(tmp)
            except OSError:
                pass
            return False
        self.next_seq += 1
        self.names.append(name)
        if len(self._fresh) < _FRESH_MAX:
            self._fresh[name] = data
        return True

    def oldest(self, skip):
        """The oldest stored answer whose name is not in `skip` (those in
        flight), as (name, payload bytes), or None. Unreadable entries are
        quarantined and skipped."""
        i = 0
        while i < len(self.names):
            name = self.names[i]
            if name in skip:
                i += 1
                continue
            data = self._fresh.get(name)
            if data is not None:
                return name, data
            try:
                with open(self._path(name), "rb") as f:
                    data = f.read()
                protocol.decode(data, "answer")
                return name, data
            except (OSError, protocol.ProtocolError) as e:
                self._quarantine(name, e)
        return None

    def acknowledged(self, answer_id):
        """The host committed `answer_id`: forget it. Returns the file name,
        or None for an answer not (or no longer) here."""
        tail = "." + answer_id + _SUFFIX
        for name in self.names:
            if name.endswith(tail):
                self.remove(name)
                return name
        return None

    def remove(self, name):
        """Forget `name` (acknowledged by the host)."""
        self._fresh.pop(name, None)
        try:
            os.remove(self._path(name))
        except OSError as e:
            log.warning(_TAG, "could not remove sent answer %s: %s" % (name, e))
        if name in self.names:
            self.names.remove(name)

    def _quarantine(self, name, why):
        self.names.remove(name)
        self.counters.add("outbox_corrupt")
        bad = name[:-len(_SUFFIX)] + ".bad"
        try:
            os.rename(self._path(name), self._path(bad))
        except OSError:
            pass
        log.error(_TAG, "stored answer %s is unreadable (%s); kept as %s, skipped"
                  % (name, why, bad))
