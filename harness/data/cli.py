"""`harness data prepare NAME [--from DIR] [--data-dir D]`: make a tfds dataset usable offline."""

from __future__ import annotations

import sys

from harness.data.catalog import DATASETS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="prepare the paper's datasets (offline-capable)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    prepare = actions.add_parser(
        "prepare",
        help="build a dataset's tfds files from the official archives",
        description=(
            "Prepare a tensorflow-datasets dataset. With --from DIR, read the official archives "
            "from DIR (no network; their sha256 must match the official files); without, "
            "download them."
        ),
    )
    prepare.add_argument("name", choices=[d for d in DATASETS if d != "synthetic"])
    prepare.add_argument(
        "--from", dest="from_dir", metavar="DIR", help="directory holding the official archives"
    )
    prepare.add_argument(
        "--data-dir", metavar="D", help="tfds data dir (default: tfds' own, or TFDS_DATA_DIR)"
    )
    prepare.add_argument("--verbose", action="store_true",
                         help="show TensorFlow's and tensorflow-datasets' own output")
    prepare.set_defaults(func=_prepare)


def _prepare(args) -> int:
    import contextlib
    import io

    from harness.console import quiet_start
    from harness.data.prepare import prepare

    source = f"the official archives in {args.from_dir}" if args.from_dir else "a download"
    print(f"preparing {args.name} from {source} (sizes and sha256 checked)", flush=True)
    # tfds' own lines (a "Downloading ..." even from local files) are held with the start-up's
    with quiet_start(args.verbose), contextlib.redirect_stdout(
            sys.stdout if args.verbose else io.StringIO()):
        path = prepare(args.name, from_dir=args.from_dir, data_dir=args.data_dir)
    print(f"{args.name} prepared in {path}")
    return 0
