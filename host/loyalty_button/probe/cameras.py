"""Frame sources for the probe, chosen by a short spec in probe.yaml:

  v4l2:0 or v4l2:/dev/video0   a USB/V4L2 camera, through OpenCV
  picamera or picamera:N       the Raspberry Pi camera (picamera2, imported
                               only here, only when used)
  folder:PATH                  the images in a folder, in name order, looping
                               (the simulator and tests)
  video:PATH                   a video file, looping

Every source gives BGR frames (numpy HxWx3) from read(), or None when no
frame could be had; the service decides what to do about that."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
KINDS = ("v4l2", "picamera", "folder", "video")


class SourceError(ValueError):
    pass


def check_spec(spec) -> str | None:
    """A problem with a source spec, in words, or None."""
    if not isinstance(spec, str) or not spec:
        return "must be text such as v4l2:0, picamera, folder:PATH or video:PATH"
    kind, _, arg = spec.partition(":")
    if kind not in KINDS:
        return f"unknown camera kind {kind!r} (known: {', '.join(KINDS)})"
    if kind in ("folder", "video") and not arg:
        return f"{kind}: needs a path, e.g. {kind}:/srv/probe/{'frames' if kind == 'folder' else 'till1.mp4'}"
    return None


class OpenCVCamera:
    def __init__(self, device: str):
        self.name = f"v4l2:{device}"
        dev = int(device) if device.isdigit() else device
        self._cap = cv2.VideoCapture(dev, cv2.CAP_V4L2)
        if not self._cap.isOpened():
            raise SourceError(f"camera {device} did not open (is it plugged in? "
                              f"is the user in the 'video' group?)")

    def read(self):
        ok, frame = self._cap.read()
        return frame if ok else None

    def close(self):
        self._cap.release()


class PiCamera:
    def __init__(self, index: str):
        try:
            from picamera2 import Picamera2  # only on a Raspberry Pi with the camera stack
        except ImportError as e:
            raise SourceError("picamera: the picamera2 package is not installed "
                              "(on Raspberry Pi OS: apt install python3-picamera2)") from e
        self.name = f"picamera:{index or 0}"
        self._cam = Picamera2(int(index or 0))
        self._cam.configure(self._cam.create_video_configuration(
            main={"size": (640, 480), "format": "RGB888"}))
        self._cam.start()

    def read(self):
        # picamera2's "RGB888" is laid out B, G, R in memory: OpenCV's order.
        return self._cam.capture_array()

    def close(self):
        self._cam.stop()
        self._cam.close()


def read_image(path: Path) -> np.ndarray:
    """An image file as BGR, or SourceError saying why not."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise SourceError(f"{path}: no such file")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise SourceError(f"{path}: not an image OpenCV can read (corrupt, or not "
                          f"JPEG/PNG/BMP/WebP)")
    return img


class FolderSource:
    def __init__(self, folder: str):
        self.name = f"folder:{folder}"
        self.folder = Path(folder)
        self.files = sorted(p for p in self.folder.iterdir()
                            if p.suffix.lower() in IMAGE_SUFFIXES) if self.folder.is_dir() else []
        if not self.files:
            raise SourceError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
        self._i = 0
        self._cache: dict[Path, np.ndarray] = {}
        self.bad: set[Path] = set()

    def read(self):
        for _ in range(len(self.files)):
            path = self.files[self._i % len(self.files)]
            self._i += 1
            if path in self.bad:
                continue
            if path not in self._cache:
                try:
                    self._cache[path] = read_image(path)
                except SourceError as e:
                    # Skip it from now on; say so once.
                    self.bad.add(path)
                    log.warning("probe source: %s; skipping it", e)
                    continue
            return self._cache[path]
        return None

    def close(self):
        self._cache.clear()


class VideoSource:
    def __init__(self, path: str):
        self.name = f"video:{path}"
        self._cap = cv2.VideoCapture(path)
        if not self._cap.isOpened():
            raise SourceError(f"{path}: not a video OpenCV can open")

    def read(self):
        ok, frame = self._cap.read()
        if not ok:  # the end: loop
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        return frame if ok else None

    def close(self):
        self._cap.release()


def open_source(spec: str):
    problem = check_spec(spec)
    if problem:
        raise SourceError(problem)
    kind, _, arg = spec.partition(":")
    if kind == "v4l2":
        return OpenCVCamera(arg or "0")
    if kind == "picamera":
        return PiCamera(arg)
    if kind == "folder":
        return FolderSource(arg)
    return VideoSource(arg)
