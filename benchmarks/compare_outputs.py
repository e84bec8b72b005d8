"""Compare two xaibids output folders, provenance masked: does a change alter any output?

    python benchmarks/compare_outputs.py OLD/xaibids NEW/xaibids

A refactoring step must leave every output as it was (issue 26). Run the same command (e.g.
``xaibids demo DIR --n-subjects 12 --n-folds 2 --n-models 2 --epochs 5``) with the code before
and after the change, then compare the two output folders. Masked before comparing: the folders'
own paths (the first folder's parent is replaced by the second's), run identifiers, dates and
times, and durations in seconds; left out: ``logs/finished/`` (the completion records list file
sizes and modification times). Every other byte must be equal. Exits 1 and names the files
that differ, with their first differing lines, otherwise 0.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

MASKS = (
    rb"\d{8}-\d{6}_[0-9a-f-]{36}",  # run UUID
    rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(\+00:00| UTC)?",  # date and time
    rb'"[a-z_]*(seconds|elapsed|duration)[a-z_]*": [0-9.e+-]+',  # durations in sidecars
)
SKIPPED = ("logs/finished/",)


def masked(data: bytes, replace: tuple[bytes, bytes] | None = None) -> bytes:
    if replace:
        data = data.replace(*replace)
    for mask in MASKS:
        data = re.sub(mask, b"<masked>", data)
    return data


def compare(old: Path, new: Path) -> list[tuple[str, list[str]]]:
    """(relative path, first differing lines) of every file that differs after masking."""
    replace = (str(old.parent).encode(), str(new.parent).encode())
    files = {p.relative_to(old).as_posix() for p in old.rglob("*") if p.is_file()}
    files |= {p.relative_to(new).as_posix() for p in new.rglob("*") if p.is_file()}
    differ = []
    for rel in sorted(files):
        if rel.startswith(SKIPPED):
            continue
        if not (old / rel).is_file() or not (new / rel).is_file():
            differ.append((rel, [f"only in {old if (old / rel).is_file() else new}"]))
            continue
        a = masked((old / rel).read_bytes(), replace)
        b = masked((new / rel).read_bytes())
        if a == b:
            continue
        try:
            lines = [line for line in difflib.unified_diff(
                a.decode().splitlines(), b.decode().splitlines(), lineterm="", n=0)
                if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        except UnicodeDecodeError:
            lines = ["(binary files differ)"]
        differ.append((rel, lines[:4]))
    return differ


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    differ = compare(args.old.absolute(), args.new.absolute())
    for rel, lines in differ:
        print(rel)
        for line in lines:
            print("   ", line[:300])
    n = sum(1 for p in args.new.rglob("*") if p.is_file())
    print(f"{len(differ)} of {n} files differ after masking provenance")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
