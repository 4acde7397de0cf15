# A small HTTP/1.0 GET that streams a body to a file on flash through one
# reused buffer, hashing as it goes: an advert image never sits in the heap
# whole. Runs on MicroPython (ESP32 and unix port) and CPython.
import asyncio
import hashlib
import os

from lbpanel import log

_TAG = "http"
_CHUNK = 512


class FetchError(Exception):
    """The fetch failed: the network, the server; worth trying again."""


class BadContent(FetchError):
    """The server sent bytes that are not the file asked for (too big, or
    the wrong sha256): trying again will not help."""


def split_url(url):
    """http://host[:port]/path -> (host, port, path)."""
    if not url.startswith("http://"):
        raise FetchError("only http:// URLs, got %r" % url)
    rest = url[7:]
    slash = rest.find("/")
    hostport, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    host, port = hostport, 80
    if ":" in hostport:
        host, port_text = hostport.rsplit(":", 1)
        if not port_text.isdigit():
            raise FetchError("bad port in %r" % url)
        port = int(port_text)
    return host, port, path


async def _read_some(reader, buf):
    readinto = getattr(reader, "readinto", None)
    if readinto is not None:
        return await readinto(buf)
    data = await reader.read(len(buf))  # CPython's StreamReader
    buf[:len(data)] = data
    return len(data)


async def fetch_to_file(url, path, sha256_hex, max_size, timeout_s=30):
    """GET url into path, only if the body is at most max_size bytes and
    hashes to sha256_hex; otherwise nothing is left at path. Raises
    FetchError with the reason."""
    host, port, target = split_url(url)
    part = path + ".part"
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    try:
        writer.write(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (target, host)).encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout_s)
        parts = status.split()
        if len(parts) < 2 or parts[1] != b"200":
            raise FetchError("HTTP %s for %s" % (status.decode().strip() or "no answer", url))
        length = None
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout_s)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is not None and length > max_size:
            raise BadContent("%d bytes, more than the %d allowed" % (length, max_size))
        digest = hashlib.sha256()
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        total = 0
        with open(part, "wb") as f:
            while True:
                n = await asyncio.wait_for(_read_some(reader, buf), timeout_s)
                if not n:
                    break
                total += n
                if total > max_size:
                    raise BadContent("more than the %d bytes allowed" % max_size)
                digest.update(view[:n])
                f.write(view[:n])
        if length is not None and total != length:
            raise FetchError("got %d of %d bytes" % (total, length))
        got = hexdigest(digest)
        if got != sha256_hex:
            raise BadContent("sha256 mismatch: got %s" % got)
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(part, path)
    except Exception:
        try:
            os.remove(part)
        except OSError:
            pass
        raise
    finally:
        try:
            writer.close()
            await writer.wait_closed()
        except Exception:
            pass


def hexdigest(digest):
    # MicroPython's hashlib has digest() only.
    raw = digest.digest()
    return "".join(["%02x" % b for b in raw])


def file_sha256(path):
    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            digest.update(view[:n])
    return hexdigest(digest)
