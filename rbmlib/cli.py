"""Command line: ``rbmlib data`` (later issues add ``tune``, ``evaluate``, ``summary``)."""

from __future__ import annotations

import argparse
import sys


def _data(args) -> int:
    from rbmlib import data

    try:
        root = data.ensure_data(args.data_dir, download=not args.no_download)
    except data.DataError as exc:
        print(f"rbmlib data: {exc}", file=sys.stderr)
        return 1
    print(f"Fashion-MNIST verified in {root / 'FashionMNIST' / 'raw'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="rbmlib", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("data", help="find, verify and cache Fashion-MNIST")
    get.add_argument("--data-dir", default=None, help="cache folder (default: $RBMLIB_DATA_DIR or ./data)")
    get.add_argument("--no-download", action="store_true", help="use local copies only")
    get.set_defaults(run=_data)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
