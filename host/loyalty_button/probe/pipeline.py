"""One frame -> faces -> for the main face: emotion probabilities, age band,
gender, and the emotional score (C-Value). Pure functions of a frame plus
three models; cameras, timing and MQTT live elsewhere (service.py).

Stages, each timed:
  detect      OpenCV Haar cascade on a downscaled grey frame (the working
              width), inside the region of interest; the largest face is
              the shopper in front of the till.
  emotion     the fer package's 7-class CNN on a 64x64 grey crop scaled to
              -1..1, run by LiteRT (the model's own preprocessing: a square
              box grown by 10 % a side, border filled with the frame's mean).
  age_gender  dlib's CC0 age and gender networks (ONNX, run by cv2.dnn) on
              an RGB crop grown by 20 % a side (dlib's chip padding), mean
              subtracted and divided by 256 as their manifest says. Opt-in.

docs/probe.md defines the C-Value and says how to read every number."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import models

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Valence of each class on -1..+1 (pleasant vs unpleasant), after the
# circumplex model: joy clearly pleasant, surprise slightly so (it goes both
# ways), neutral nothing, the rest unpleasant with anger and disgust the
# most. The C-Value is the expected valence in points.
VALENCE = {"angry": -1.0, "disgust": -0.9, "fear": -0.7, "happy": 1.0, "sad": -0.8,
           "surprise": 0.2, "neutral": 0.0}
AGE_BANDS = ((0, 17, "under-18"), (18, 24, "18-24"), (25, 34, "25-34"), (35, 44, "35-44"),
             (45, 54, "45-54"), (55, 64, "55-64"), (65, 999, "65+"))
# The age network's 81 classes and what age each stands for (its manifest).
_AGE_WEIGHTS = np.array([0.25] + list(range(1, 81)), dtype=np.float32)
_AG_MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)
GENDERS = ("female", "male")


def c_value(probs: dict[str, float]) -> int:
    """Expected valence of the emotion estimate, -100 (clearly unhappy) to
    +100 (clearly happy); 0 is neutral or an even mix."""
    return int(round(100 * sum(p * VALENCE[k] for k, p in probs.items())))


def age_band(age: float) -> str:
    for lo, hi, name in AGE_BANDS:
        if age < hi + 1:
            return name
    return AGE_BANDS[-1][2]


@dataclass(frozen=True)
class Face:
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def box(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def iou(self, other: "Face") -> float:
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1 = min(self.x + self.w, other.x + other.w)
        y1 = min(self.y + self.h, other.y + other.h)
        inter = max(0, x1 - x0) * max(0, y1 - y0)
        union = self.area + other.area - inter
        return inter / union if union else 0.0


class DetectorSettings:
    """work_width: frames are shrunk to this width for detection (speed);
    min_face: smallest face side at the working width, in pixels (smaller is
    someone far away, or a false positive); roi: (x0, y0, x1, y1) as
    fractions of the frame, where shoppers stand (keep the cashier out)."""

    def __init__(self, work_width: int = 320, min_face: int = 40,
                 roi: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
                 scale_factor: float = 1.1, min_neighbors: int = 5):
        x0, y0, x1, y1 = roi
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"roi must be x0 < x1, y0 < y1 within 0..1, got {roi}")
        self.work_width, self.min_face, self.roi = work_width, min_face, roi
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors


class FaceDetector:
    def __init__(self, settings: DetectorSettings | None = None):
        self.s = settings or DetectorSettings()
        cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(cascade))
        if self._cascade.empty():
            raise models.ModelError(f"OpenCV's face cascade {cascade} did not load")

    def detect(self, grey: np.ndarray) -> list[Face]:
        """Faces in a full-size grey frame, largest first, in its pixels."""
        h, w = grey.shape[:2]
        scale = min(1.0, self.s.work_width / w)
        small = grey if scale == 1.0 else cv2.resize(grey, (round(w * scale), round(h * scale)),
                                                     interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        x0, y0, x1, y1 = self.s.roi
        ox, oy = int(x0 * sw), int(y0 * sh)
        part = small[oy:int(y1 * sh), ox:int(x1 * sw)]
        if min(part.shape[:2]) < self.s.min_face:
            return []
        found = self._cascade.detectMultiScale(part, scaleFactor=self.s.scale_factor,
                                               minNeighbors=self.s.min_neighbors,
                                               minSize=(self.s.min_face, self.s.min_face))
        faces = [Face(int((fx + ox) / scale), int((fy + oy) / scale), int(fw / scale),
                      int(fh / scale)) for fx, fy, fw, fh in found]
        return sorted(faces, key=lambda f: f.area, reverse=True)


def _square_crop(img: np.ndarray, face: Face, grow: float) -> np.ndarray:
    """A square around the face, grown by `grow` of its side on each side;
    what falls outside the frame is filled with the frame's mean."""
    side = max(face.w, face.h)
    cx, cy = face.x + face.w / 2, face.y + face.h / 2
    half = side * (0.5 + grow)
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    x1, y1 = int(round(cx + half)), int(round(cy + half))
    h, w = img.shape[:2]
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    if pad:
        fill = cv2.mean(img)[:1 if img.ndim == 2 else 3]
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    return img[y0:y1, x0:x1]


class EmotionNet:
    def __init__(self, model_dir: Path | None = None):
        from ai_edge_litert.interpreter import Interpreter
        self._net = Interpreter(model_path=str(models.path("emotion", model_dir)),
                                num_threads=1)
        self._net.allocate_tensors()
        self._in = self._net.get_input_details()[0]["index"]
        self._out = self._net.get_output_details()[0]["index"]

    def __call__(self, grey: np.ndarray, face: Face) -> dict[str, float]:
        crop = cv2.resize(_square_crop(grey, face, 0.1), (64, 64), interpolation=cv2.INTER_AREA)
        x = (crop.astype(np.float32) / 255.0 - 0.5) * 2.0
        self._net.set_tensor(self._in, x[None, :, :, None])
        self._net.invoke()
        p = self._net.get_tensor(self._out)[0].astype(float)
        p = p / p.sum() if p.sum() > 0 else p
        return {k: round(float(v), 3) for k, v in zip(EMOTIONS, p)}


class AgeGenderNet:
    def __init__(self, model_dir: Path | None = None):
        self._age = cv2.dnn.readNetFromONNX(str(models.path("age", model_dir)))
        self._gender = cv2.dnn.readNetFromONNX(str(models.path("gender", model_dir)))

    @staticmethod
    def _blob(chip: np.ndarray, size: int) -> np.ndarray:
        c = cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
        return ((c - _AG_MEANS) / 256.0).transpose(2, 0, 1)[None].copy()

    def __call__(self, bgr: np.ndarray, face: Face) -> dict:
        chip = cv2.cvtColor(_square_crop(bgr, face, 0.2), cv2.COLOR_BGR2RGB)
        self._age.setInput(self._blob(chip, 64))
        age = float((self._age.forward()[0] * _AGE_WEIGHTS).sum())
        self._gender.setInput(self._blob(chip, 32))
        g = self._gender.forward()[0]
        i = int(np.argmax(g))
        return {"age_band": age_band(age), "gender": GENDERS[i], "gender_p": round(float(g[i]), 3)}


class Analyzer:
    """The whole pipeline for one camera. Not thread-safe: one per camera."""

    def __init__(self, model_dir: Path | None = None, detector: DetectorSettings | None = None,
                 age_gender: bool = False):
        self.detector = FaceDetector(detector)
        self.emotion = EmotionNet(model_dir)
        self.age_gender = AgeGenderNet(model_dir) if age_gender else None

    def faces(self, bgr: np.ndarray) -> tuple[np.ndarray, list[Face], float]:
        t0 = time.perf_counter()
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
        faces = self.detector.detect(grey)
        return grey, faces, (time.perf_counter() - t0) * 1000

    def describe(self, bgr: np.ndarray, grey: np.ndarray, face: Face) -> tuple[dict, dict]:
        """Estimate for one face: (fields, stage times in ms)."""
        t0 = time.perf_counter()
        probs = self.emotion(grey, face)
        t1 = time.perf_counter()
        out = {"box": face.box(), "emotion": max(probs, key=probs.get), "emotions": probs,
               "c_value": c_value(probs)}
        times = {"emotion": round((t1 - t0) * 1000, 3)}
        if self.age_gender is not None and bgr.ndim == 3:
            out.update(self.age_gender(bgr, face))
            times["age_gender"] = round((time.perf_counter() - t1) * 1000, 3)
        return out, times

    def analyze(self, bgr: np.ndarray) -> dict:
        """Everything about one still image (the CLI's `probe analyze`)."""
        grey, faces, t_detect = self.faces(bgr)
        result = {"faces": len(faces), "boxes": [f.box() for f in faces],
                  "width": int(bgr.shape[1]), "height": int(bgr.shape[0]),
                  "timings_ms": {"detect": round(t_detect, 3)}}
        if faces:
            main, times = self.describe(bgr, grey, faces[0])
            result["main"] = main
            result["timings_ms"].update(times)
        return result


class Persistence:
    """A face counts only once it has been seen in `frames` consecutive
    frames at about the same place: a poster or a reflection that fools the
    cascade for one frame does not become a shopper."""

    def __init__(self, frames: int = 3, min_iou: float = 0.3):
        self.frames, self.min_iou = frames, min_iou
        self._last: Face | None = None
        self._run = 0

    def update(self, face: Face | None) -> bool:
        if face is None:
            self._last, self._run = None, 0
            return False
        if self._last is not None and face.iou(self._last) >= self.min_iou:
            self._run += 1
        else:
            self._run = 1
        self._last = face
        return self._run >= self.frames
