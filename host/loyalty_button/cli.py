"""`loyalty-button`: the store host's command line. A thin layer over the
package's modules."""

from __future__ import annotations

import argparse
import logging
import sys


def _demo(args) -> int:
    from . import demo
    demo.run(timeout_s=args.timeout)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loyalty-button",
                                     description="Loyalty Button store host")
    parser.add_argument("--log-level", default="WARNING",
                        help="DEBUG, INFO, WARNING (default) or ERROR")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="one simulated panel answering questions through a real broker")
    p.add_argument("--timeout", type=int, default=4, help="question timeout in seconds (3-300)")
    p.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
