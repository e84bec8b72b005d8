"""Entry point of the ``xaibids`` command: ``xaibids demo ...`` (:mod:`xaibids.cli.demo`), else
the BIDS-App command ``xaibids BIDS_DIR OUTPUT_DIR {participant,group}``
(:mod:`xaibids.cli.command`).
"""

from __future__ import annotations

import sys

from xaibids.cli.command import main as command_main


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xaibids`` command; returns the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["demo"]:
        from xaibids.cli.demo import main as demo_main

        return demo_main(args[1:])
    return command_main(args)


if __name__ == "__main__":
    sys.exit(main())
