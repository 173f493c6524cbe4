"""What every experiment script shares: its command line, its inputs, its markdown tables.

Each script under ``experiments/`` is run as ``python -m experiments.NAME``. They all

- honour ``--help`` (argparse), without running anything;
- find the public traces in ``--shared`` (default: ``$GPUSIM_TRACES`` if set, else
  ``../shared/traces`` next to the project), and stop with a one-line message and exit status 2
  when an input they need is missing (:func:`need`, :func:`run`);
- write their tables with ``--markdown FILE``: between the script's markers in ``FILE`` if it
  has them (``<!-- NAME:start ... -->`` ... ``<!-- NAME:end -->``), else the whole file
  (:func:`write_markdown`), so a table in the docs is regenerated, never typed.

Exit statuses follow the simulator's rule (``docs/outputs.md``): 0 done, 1 the run failed,
2 usage or input error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class MissingInput(Exception):
    """An input file or folder that the experiment needs is not there."""


def default_shared() -> Path:
    """The traces folder: ``$GPUSIM_TRACES``, else ``../shared/traces`` beside the project."""
    env = os.environ.get("GPUSIM_TRACES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "traces"


def parser(doc: str | None, *, shared: bool = False, markdown: bool = True):
    """An argument parser described by the script's docstring, with the common options."""
    lines = (doc or "").strip().splitlines()
    p = argparse.ArgumentParser(
        description=lines[0] if lines else None,
        epilog="\n".join(lines[1:]).strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if shared:
        p.add_argument(
            "--shared",
            type=Path,
            default=None,
            help="folder of the public traces (default: $GPUSIM_TRACES, else ../shared/traces)",
        )
    if markdown:
        p.add_argument(
            "--markdown",
            type=Path,
            default=None,
            metavar="FILE",
            help="write the tables to FILE (between this script's markers if FILE has them)",
        )
    return p


def shared_dir(args: argparse.Namespace) -> Path:
    """The traces folder chosen on the command line or by default."""
    return args.shared if getattr(args, "shared", None) is not None else default_shared()


def need(path: Path, what: str, how: str = "pass --shared DIR or set GPUSIM_TRACES") -> Path:
    """Return ``path`` if it exists, else raise :class:`MissingInput` naming it and the fix."""
    path = Path(path)
    if not path.exists():
        raise MissingInput(f"{what} not found at {path} ({how})")
    return path


def run(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> None:
    """Run a script's ``main`` with the common exit rule (2 on missing or bad input, 130 on ^C)."""
    from traces.errors import TraceError  # local: keep --help free of heavy imports

    try:
        main(argv)
    except (MissingInput, TraceError, FileNotFoundError) as exc:
        prog = Path(sys.argv[0]).stem if argv is None else "experiment"
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of script ``name``'s generated block."""
    return f"<!-- {name}:start", f"<!-- {name}:end -->"


def write_markdown(path: Path, name: str, body: str) -> None:
    """Put ``body`` between ``name``'s markers in ``path`` (kept), or make it the whole file.

    The start marker is the line beginning ``<!-- NAME:start``; whatever follows on that line
    (usually the command that regenerates the block) is kept.
    """
    path = Path(path)
    start, end = markers(name)
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        marker_tail, rest = rest.split("\n", 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}{marker_tail}\n{body.rstrip()}\n{end}{tail}"
    else:
        text = body.rstrip() + "\n"
    path.write_text(text)


def provenance(module: str, argv: list[str] | None) -> str:
    """One sentence naming the command, the date and the machine that produced a table."""
    args = argv if argv is not None else sys.argv[1:]
    shown = []
    skip = False
    for a in args:  # the output file is not part of what produced the numbers
        if skip:
            skip = False
            continue
        if a == "--markdown":
            skip = True
            continue
        if a.startswith("--markdown="):
            continue
        shown.append(a)
    cmd = " ".join([f"python -m {module}", *shown])
    return f"Generated by `{cmd}` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} cores)."
