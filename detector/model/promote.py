"""Promote a bundle: verify it loads, then point the served location at it in one atomic step.

Workers watching the location (hot reload) pick the new bundle up between two batches; a bundle that fails
verification is never pointed at. The location is a symbolic link (`/models/current -> versions/2026…`), replaced
by a rename, so a worker sees the old bundle or the new one, never a mixture.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from detector.model.bundle import ModelBundle


def promote(bundle: str | os.PathLike[str], link: str | os.PathLike[str]) -> str:
    """Point `link` at `bundle` (relative when they share a folder); raises BundleError if it does not verify."""
    target = Path(bundle).resolve()
    loaded = ModelBundle.load(target)
    pointer = Path(link)
    if pointer.exists() and not pointer.is_symlink():
        raise ValueError(f"{pointer} exists and is not a symbolic link; move it away or name another location")
    relative = os.path.relpath(target, pointer.parent.resolve())
    staged = pointer.with_name(f".{pointer.name}.{os.getpid()}")
    staged.unlink(missing_ok=True)
    staged.symlink_to(relative)
    os.replace(staged, pointer)  # atomic on one filesystem
    return f"{loaded.name} {loaded.version}"


def cmd_promote(args: argparse.Namespace) -> int:
    what = promote(args.bundle, args.link)
    print(f"tsad promote: {args.link} -> {args.bundle} ({what})", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("promote", help="verify a bundle and point the served location (a symlink) at it")
    p.add_argument("bundle", help="the bundle directory to serve")
    p.add_argument("--link", required=True, help="the location the workers watch, e.g. /models/current")
    p.set_defaults(func=cmd_promote)
