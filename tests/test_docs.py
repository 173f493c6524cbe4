"""The README and docs/: links that resolve, generated blocks that match their scripts."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    out, code = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            code = not code
        elif not code and line.startswith("#"):
            out.add(github_slug(line.lstrip("#")))
    return out


def links(path: Path):
    code = False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            code = not code
            continue
        if code:
            continue
        for target in LINK.findall(line):
            if not re.match(r"^[a-z]+://", target):
                yield n, target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    bad = []
    for n, target in links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            bad.append(f"{page.name}:{n}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{page.name}:{n}: {target} (no such heading in {dest.name})")
    assert not bad, "\n".join(bad)


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) < 200, "the README stays short; reference material goes to docs/"
    # the two set-up commands are the first lines after the title
    block = text.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert block[0].startswith("pip install -e . && python -m simulator +policy=gang")
    assert block[1].startswith('pip install -e ".[test]" && pytest')
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name}" in text, f"docs/{page.name} is not linked from the README"


BLOCK_PAGES = [*PAGES, *sorted(ROOT.glob("*/README.md"))]
"""Pages that may hold generated blocks (the docs and the READMEs of the top-level folders)."""


def generated_blocks():
    for page in BLOCK_PAGES:
        text = page.read_text()
        for m in re.finditer(r"<!-- (\w+):start \((python -m experiments\.(\w+)[^)]*)\) -->", text):
            yield page, m.group(1), m.group(3), text


@pytest.mark.parametrize(
    "page,name,module",
    [(p, n, m) for p, n, m, _ in generated_blocks()],
    ids=lambda v: getattr(v, "name", v),
)
def test_generated_blocks_name_their_script(page, name, module):
    assert (ROOT / "experiments" / f"{module}.py").exists()
    text = page.read_text()
    assert text.count(f"<!-- {name}:start") == 1
    assert text.count(f"<!-- {name}:end -->") == 1
    assert text.index(f"<!-- {name}:start") < text.index(f"<!-- {name}:end -->")


@pytest.mark.parametrize(
    "page,name,module",
    [(p, n, m) for p, n, m, _ in generated_blocks()],
    ids=lambda v: getattr(v, "name", v),
)
def test_generated_blocks_are_filled(page, name, module):
    """A block left empty means its script was never run into the page."""
    text = page.read_text()
    start = text.index("\n", text.index(f"<!-- {name}:start")) + 1
    body = text[start : text.index(f"<!-- {name}:end -->")].strip()
    assert body, f"{page.name}: block {name} is empty; run its command (named in the marker)"
    assert "|" in body or "```" in body, f"{page.name}: block {name} holds no table or listing"


def test_readme_run_block_is_what_the_first_command_prints(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- readme_run:start", 1)[1].split("<!-- readme_run:end -->", 1)[0]
    shown = block.split("```\n", 1)[1].rsplit("```", 1)[0].splitlines()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "+policy=gang",
            f"hydra.run.dir={tmp_path}",
            "sim.progress=false",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    printed = [ln for ln in out.stdout.splitlines() if ln and not ln.startswith("results:")]

    def stable(lines):  # the wall time is the machine's, not the simulation's
        return [ln for ln in lines if not ln.startswith("wall time")]

    assert stable(shown) == stable(printed), (
        "README's run block is stale: python -m experiments.readme_run --markdown README.md"
    )


def test_outputs_schema_tables_are_the_schema_modules():
    # docs/outputs.md's column/dtype tables are generated from simulator.output.schema
    from experiments.schema_tables import block

    text = (ROOT / "docs" / "outputs.md").read_text()
    body = text.split("<!-- schema_tables:start", 1)[1].split("\n", 1)[1]
    body = body.split("<!-- schema_tables:end -->", 1)[0]
    assert body.strip() == block().strip(), (
        "docs/outputs.md's schema tables are stale: "
        "python -m experiments.schema_tables --markdown docs/outputs.md"
    )
