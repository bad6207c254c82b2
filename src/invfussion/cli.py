"""The ``invfussion`` command. Thin: it parses arguments and calls the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="invfussion",
        description="Solve linear inverse problems in imaging with one degradation-aware diffusion model.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("demo", help="restore embedded MNIST digits with the shipped model")
    sub.add_parser("train", help="train an InvFussion, Palette or unconditional model")
    sub.add_parser("restore", help="restore an image from a degraded measurement")
    sub.add_parser("sample", help="draw unconditional or class-conditional samples")
    sub.add_parser("evaluate", help="compare methods on a benchmark (PSNR, FD, C-FD, NFE)")
    sub.add_parser("prepare-data", help="turn a folder of images into a dataset zip")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError, KeyError, OSError) as exc:
        if args.debug:
            raise
        print(f"invfussion {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
