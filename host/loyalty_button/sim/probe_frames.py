"""Sample camera frames for the simulator and tests, made from the real
photos that ship in scikit-image (no expression data set ships in any
package, so the faces are few: the astronaut smiles). A folder plays like
a camera: runs of similar frames with a shopper, then an empty scene."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def astronaut() -> np.ndarray:
    from skimage import data
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def no_face() -> np.ndarray:
    from skimage import data
    return cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)


def write_folder(folder: Path, run: int = 5) -> Path:
    """Frames 000.jpg... : a shopper (run frames), the same shopper in dimmer
    light, the mirrored scene, then nobody at the till."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    face = astronaut()
    scenes = [face, cv2.convertScaleAbs(face, alpha=0.7, beta=0), cv2.flip(face, 1), no_face()]
    n = 0
    for scene in scenes:
        # Nobody at the till for longer than any one shopper stays.
        for i in range(run * 3 if scene is scenes[-1] else run):
            # A little camera noise, so that frames differ as they do live.
            noise = np.random.default_rng(n).integers(-4, 5, scene.shape, dtype=np.int16)
            frame = np.clip(scene.astype(np.int16) + noise, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{n:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
            n += 1
    return folder
