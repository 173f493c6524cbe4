"""The README's "One run" block: the summary the first set-up command prints, from a real run.

Usage::

    python -m experiments.readme_run                      # print the block
    python -m experiments.readme_run --markdown README.md # write it between the README's markers

Runs ``python -m simulator +policy=gang`` (the README's first command, on the bundled trace and
the built-in cluster) twice in a fresh run directory and keeps the second run's printed summary,
so that the wall-time line is a warm run's, not Numba's first compilation. The results line
(the run directory, a temporary path) is left out.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from experiments._cli import EXIT_FAILED, parser, run, write_markdown

COMMAND = ["+policy=gang"]


def summary_block(extra: list[str] | None = None) -> str:
    """The summary lines of a warm run of the README's first command, as a fenced block."""
    with tempfile.TemporaryDirectory(prefix="gpusim-readme-") as tmp:
        for i in range(2):
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "simulator",
                    *COMMAND,
                    *(extra or []),
                    f"hydra.run.dir={Path(tmp) / str(i)}",
                    "sim.progress=false",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                sys.exit(EXIT_FAILED)
    lines = [ln for ln in out.stdout.splitlines() if ln and not ln.startswith("results:")]
    return "```\n" + "\n".join(lines) + "\n```"


def main(argv: list[str] | None = None) -> None:
    args = parser(__doc__).parse_args(argv)
    block = summary_block()
    print(block)
    if args.markdown:
        write_markdown(args.markdown, "readme_run", block)


if __name__ == "__main__":
    run(main)
