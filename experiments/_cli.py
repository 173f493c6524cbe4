"""What every experiment script shares: its command line, its inputs, its markdown tables.

Each script under ``experiments/`` is run as ``python -m experiments.NAME``. They all

- honour ``--help`` (argparse), without running anything (:func:`parser`, :func:`parse`);
- find the public traces in ``--shared`` (default: ``$GPUSIM_TRACES`` if set, else
  ``../shared/traces`` next to the project), and stop with a one-line message and exit status 2
  when an input they need is missing (:func:`need`, :func:`run`);
- write their tables with ``--markdown FILE``: between the script's markers in ``FILE``
  (``<!-- NAME:start (python -m experiments.NAME ...) -->`` ... ``<!-- NAME:end -->``, NAME the
  script's name), or as a new file holding just that block (:func:`write_markdown`), with the
  command, date and machine (:func:`provenance`) and the exact configuration above the tables
  (:func:`markdown_block`), so a table in the docs is regenerated, never typed. A ``FILE`` that
  exists without the markers, or in a folder that does not exist, is refused before anything
  runs (:func:`parse`).

Exit statuses follow the simulator's rule (``docs/outputs.md``): 0 done, 1 the run failed,
2 usage or input error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
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


def parser(
    doc: str | None, *, shared: bool = False, markdown: bool = True, name: str | None = None
) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring, with the common options.

    Args:
        doc: the script's docstring: its first line is the description, the rest the epilog.
        shared: add ``--shared DIR`` (the public traces, see :func:`shared_dir`).
        markdown: add ``--markdown FILE``.
        name: the script's name (``fair_reclaim``): the program is then shown as
            ``python -m experiments.NAME``.
    """
    lines = (doc or "").strip().splitlines()
    p = argparse.ArgumentParser(
        prog=f"python -m experiments.{name}" if name else None,
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
            help="also write the tables to FILE, between this script's markers (or a new FILE)",
        )
    return p


def parse(p: argparse.ArgumentParser, argv: list[str] | None, name: str) -> argparse.Namespace:
    """Parse ``argv``, then :func:`check_markdown` (a bad ``--markdown FILE``: status 2 now)."""
    args = p.parse_args(argv)
    check_markdown(p, args, name)
    return args


def check_markdown(p: argparse.ArgumentParser, args: argparse.Namespace, name: str) -> None:
    """Refuse (argparse error, status 2) a ``--markdown FILE`` that could not take the block.

    Checked before the experiment runs, so that an hour of simulation is not lost to a typo:
    ``FILE`` must be new (in an existing folder), empty, or hold ``name``'s two markers.
    """
    out = getattr(args, "markdown", None)
    if out is not None:
        problem = markdown_problem(Path(out), name)
        if problem:
            p.error(problem)


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def configured(group: str, name: str, **overrides):
    """The object ``configs/GROUP/NAME.yaml`` builds, with ``overrides`` of its fields.

    Experiments build clusters and policies from the same YAML files as ``python -m
    simulator`` does, so that a table's row is what the equivalent command line gives
    (``configured("cluster", "default", num_nodes=80)`` is ``cluster.num_nodes=80``).
    """
    from hydra.utils import instantiate  # local: keep --help free of heavy imports
    from omegaconf import OmegaConf

    path = Path(__file__).resolve().parents[1] / "configs" / group / f"{name}.yaml"
    cfg = OmegaConf.merge(OmegaConf.load(path), OmegaConf.create(overrides))
    return instantiate(cfg, _convert_="all")


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
    """Run a script's ``main`` and exit with the common rule.

    0 done (or the status ``main`` returns); 2 a missing or malformed input (:class:`MissingInput`,
    ``TraceError``, ``FileNotFoundError``: one line ``error: ...`` on stderr, no traceback);
    130 interrupted (Ctrl-C, or SIGTERM, which is made to act like it). argparse exits with 2 on
    a bad option and 0 after ``--help`` by itself. Any other error is a failed run: Python's
    traceback, status 1.
    """
    from traces.errors import TraceError  # local: keep --help free of heavy imports

    previous = signal.getsignal(signal.SIGTERM)
    mapped = threading.current_thread() is threading.main_thread() and previous in (
        signal.SIG_DFL,
        None,
    )
    if mapped:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        status = main(argv)
    except (MissingInput, TraceError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if mapped:
            signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)
    sys.exit(status if isinstance(status, int) else 0)


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of script ``name``'s generated block."""
    return f"<!-- {name}:start", f"<!-- {name}:end -->"


def _split(text: str, name: str) -> tuple[str, str, str] | None:
    """``text`` around ``name``'s block: (before it, the rest of the start line, after it)."""
    start, end = markers(name)
    if start not in text:
        return None
    head, rest = text.split(start, 1)
    marker_tail, _, rest = rest.partition("\n")
    if end not in rest:
        return None
    return head, marker_tail, rest.split(end, 1)[1]


def markdown_problem(path: Path, name: str) -> str | None:
    """Why ``--markdown path`` cannot take ``name``'s block, or None if it can."""
    start, end = markers(name)
    if path.is_dir():
        return f"--markdown {path}: a folder, not a file"
    if not path.exists():
        if not path.parent.is_dir():
            return f"--markdown {path}: the folder {path.parent} does not exist"
        return None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return f"--markdown {path}: cannot read it ({exc})"
    if not text.strip() or _split(text, name) is not None:
        return None
    return (
        f"--markdown {path}: the file has no {start} ... {end} markers (each on a line of "
        "its own); add them where the tables go, or give a new file"
    )


def write_markdown(path: Path, name: str, body: str, command: str | None = None) -> None:
    """Put ``body`` between ``name``'s markers in ``path``; a new or empty file gets the block.

    The start marker is the line beginning ``<!-- NAME:start``; whatever follows on that line
    (usually the command that regenerates the block) is kept. A new file's start marker names
    ``command`` (default ``python -m experiments.NAME``).

    Raises:
        ValueError: ``path`` has text but not the two markers (see :func:`markdown_problem`).
    """
    path = Path(path)
    start, end = markers(name)
    text = path.read_text() if path.exists() else ""
    parts = _split(text, name)
    if parts is not None:
        head, marker_tail, tail = parts
        text = f"{head}{start}{marker_tail}\n{body.rstrip()}\n{end}{tail}"
    elif not text.strip():
        command = command or f"python -m experiments.{name}"
        text = f"{start} ({command}) -->\n{body.rstrip()}\n{end}\n"
    else:
        raise ValueError(markdown_problem(path, name))
    path.write_text(text)


def markdown_block(module: str, argv: list[str] | None, config: str, *tables: str) -> str:
    """The text of a generated block: provenance, the exact configuration, then the tables."""
    parts = [provenance(module, argv), config.strip(), *(t.strip() for t in tables if t)]
    return "\n\n".join(p for p in parts if p) + "\n"


def emit(
    args: argparse.Namespace,
    name: str,
    body: str,
    argv: list[str] | None,
    script: str | None = None,
) -> None:
    """Write ``body`` to ``--markdown FILE`` between ``name``'s markers, if it was given.

    Args:
        args: the parsed arguments.
        name: the markers' name (the script's, unless it writes several blocks).
        body: the block (:func:`markdown_block`).
        argv: the arguments the script was given (None = ``sys.argv[1:]``), for the command
            named in a new file's start marker.
        script: the script's name when it is not ``name``.
    """
    out = getattr(args, "markdown", None)
    if out is None:
        return
    shown = sys.argv[1:] if argv is None else argv
    command = " ".join([f"python -m experiments.{script or name}", *shown])
    write_markdown(out, name, body, command=command)
    print(f"tables written to {out} (between the {name} markers)", file=sys.stderr)


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
