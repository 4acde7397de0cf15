"""`loyalty-button`: the store host's command line. A thin layer over the
package's modules."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _demo(args) -> int:
    from . import demo
    demo.run(timeout_s=args.timeout)
    return 0


def _concentrator(args) -> int:
    import asyncio
    from . import catalogue, concentrator, host_config
    try:
        cfg = host_config.load(args.config)
        catalogue.load(cfg.catalogue)  # refuse to start on a bad catalogue
    except (host_config.HostConfigError, catalogue.CatalogueError) as e:
        print(f"cannot start: {len(e.problems)} problem(s):", file=sys.stderr)
        for problem in e.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if args.log_level is None:
        logging.getLogger().setLevel(cfg.log_level)
    asyncio.run(concentrator.serve(cfg, ready_file=args.ready_file))
    return 0


def _bench(args) -> int:
    import json
    from . import bench_heap
    benches = {"heap": bench_heap.run}
    for name in args.names:
        if name not in benches:
            print(f"unknown benchmark {name!r}; known: {', '.join(benches)}", file=sys.stderr)
            return 2
    results = {}
    for name in args.names:
        results.update(benches[name](out=print))
    print(json.dumps(results))  # the last line of stdout: one JSON object
    return 0


def _build_firmware(args) -> int:
    from . import firmware_build
    out = firmware_build.build(args.out_dir)
    print(f"firmware built in {out}/ (copy lbpanel/, main.py and a panel.json to the panel)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loyalty-button",
                                     description="Loyalty Button store host")
    parser.add_argument("--log-level", default=None,
                        help="DEBUG, INFO, WARNING or ERROR (default: WARNING; for the "
                             "concentrator, its config's log_level)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="one simulated panel answering questions through a real broker")
    p.add_argument("--timeout", type=int, default=4, help="question timeout in seconds (3-300)")
    p.set_defaults(func=_demo)
    p = sub.add_parser("concentrator", help="run the store's concentrator (POS intake, "
                                            "questions, feedback records)")
    p.add_argument("--config", required=True, type=Path, help="concentrator.yaml")
    p.add_argument("--ready-file", help="write the PID here once ready (for supervisors)")
    p.set_defaults(func=_concentrator)
    p = sub.add_parser("bench", help="benchmarks: heap")
    p.add_argument("names", nargs="*", default=["heap"])
    p.set_defaults(func=_bench)
    p = sub.add_parser("build-firmware", help="compile the panel firmware to .mpy")
    p.add_argument("out_dir", nargs="?", default="build/firmware")
    p.set_defaults(func=_build_firmware)
    args = parser.parse_args(argv)
    logging.basicConfig(level=(args.log_level or "WARNING").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
