"""The release notebook template, from one source rendered two ways.

The cell list below is generated from the gate registry, so every checklist item has exactly one
gate cell and the marimo notebook (templates/release.py) and the Jupyter notebook
(templates/release.ipynb) cannot drift apart; tests compare the committed files with `render_*`.
Teams may edit their copy in templates/: `relnb new` prefers the project's template.

In marimo, each section's cells read the previous section's summary, which makes the execution
order explicit (the rollback plan E is prepared after C, production D runs after it, the rollback
after D, F last) and re-evaluates the promotion guard when an earlier gate changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .gates import GATES, SECTIONS, GateSpec, Kind, gates_in

PLACEHOLDER = "__RELEASE_ID__"
MARIMO_VERSION = "0.25.2"


@dataclass
class Cell:
    code: str
    defines: tuple[str, ...] = ()
    markdown: str | None = None
    refs: tuple[str, ...] = field(default_factory=tuple)
    # The Jupyter variant's code: None means the same code, "" means no such cell in Jupyter.
    # Jupyter cells use plain `relnb` only (no marimo), through relnb.ui's prompt helpers.
    jupyter: str | None = None


def _md(text: str) -> Cell:
    return Cell(code=f'mo.md(r"""\n{text}\n""")', markdown=text, refs=("mo",))


# The notebook prepares the rollback plan (E) before production (D), as the checklist asks ("must
# be prepared"): a plan that cannot be prepared shows before anything is deployed.
NOTEBOOK_ORDER = ("A", "B", "C", "E", "D", "F")


def _section_intro(letter: str) -> str:
    lines = [f"## {letter}) {SECTIONS[letter]}", ""]
    for g in gates_in(letter):
        opt = " *(optional)*" if g.optional else ""
        lines.append(f"- **{g.id}** {g.title}{opt} — {g.kind}")
    if letter == "D":
        lines += ["", "Every cell here refuses to run until A–C are passed, skipped or waived."]
    if letter == "E":
        lines += ["", "Prepared before D starts; the rollback cell after section D runs this plan if production is hurt."]
    return "\n".join(lines)


def _jupyter_check(gate_id: str) -> str:
    """A gate cell in Jupyter: runs the gate, then asks for a sign-off when (and only when) the
    gate waits for one, including checks the project lists as hand-checked ([gates] manual)."""
    var = gate_id.lower()
    return f'{var} = relnb.ui.prompt(release, release.check("{gate_id}"))\n{var}'


def _gate_cells(g: GateSpec, after: tuple[str, ...]) -> list[Cell]:
    """A gate's control cell (defines the widget, shows nothing) and its gate cell (runs the
    gate and shows its state through relnb.ui's views: the control only when it can be used).
    Jupyter has the gate cell only, asking through relnb.ui.prompt."""
    var = g.id.lower()
    if g.kind is Kind.ACTION:
        go = f"{var}_go"
        ctrl = f'{go} = relnb.ui.run_button("{g.id}")'
        defines: tuple[str, ...] = (go,)
        skip_arg = skip_view = ""
        if g.optional:
            ctrl += f'\n{var}_skip = relnb.ui.skip_input("{g.id}")'
            defines = (go, f"{var}_skip")
            skip_arg, skip_view = f", skip={var}_skip", f", {var}_skip"
        code = f'{var} = release.act("{g.id}", confirmed={go}{skip_arg})\nrelnb.ui.action_view(release, {var}, {go}{skip_view})'
        jcode = f'{var} = relnb.ui.prompt(release, release.act("{g.id}"))\n{var}'
        return [
            Cell(ctrl, defines, refs=("relnb",), jupyter=""),
            Cell(code, (var,), refs=("relnb", "release", *defines, *after), jupyter=jcode),
        ]
    # sign-off gates, and checks a project may list as hand-checked ([gates] manual): the form
    # shows only while the gate waits for a sign-off
    form = f"{var}_form"
    code = f'{var} = release.check("{g.id}", submitted={form}.value)\nrelnb.ui.sign_off_view(release, {var}, {form})'
    return [
        Cell(f'{form} = relnb.ui.sign_off_input(release, "{g.id}")', (form,), refs=("relnb", "release"), jupyter=""),
        Cell(code, (var,), refs=("relnb", "release", form, *after), jupyter=_jupyter_check(g.id)),
    ]


def cells() -> list[Cell]:
    out = [
        Cell("import marimo as mo\nimport relnb", ("mo", "relnb"), jupyter="import relnb"),
        _md(
            "# Release __RELEASE_ID__\n\n"
            "Each cell below is one item of the release checklist (docs/release-checklist.md). "
            "Automatic gates run and record evidence; sign-offs wait for a person; actions wait "
            "for their button and run once. The journal in `releases/__RELEASE_ID__/` is the "
            "record: re-running a cell or reloading the page repeats nothing."
        ),
        Cell(f'release = relnb.Release.open("{PLACEHOLDER}")', ("release",), refs=("relnb",), jupyter=f'release = relnb.Release.open("{PLACEHOLDER}")\nrelease'),
        # the header follows the journal: re-read on a timer in marimo (it cannot depend on the
        # gate cells below it without running after them)
        Cell("header_tick = relnb.ui.ticker()", ("header_tick",), refs=("relnb",), jupyter=""),
        Cell("relnb.ui.summary(release, header_tick)", refs=("header_tick", "relnb", "release"), jupyter="relnb.ui.summary(release)"),
    ]
    prev_summary: str | None = None
    after: tuple[str, ...] = ()
    for letter in NOTEBOOK_ORDER:
        out.append(_md(_section_intro(letter)))
        results: list[str] = []
        for g in gates_in(letter):
            out.extend(_gate_cells(g, after))
            results.append(g.id.lower())
        summary = f"section_{letter.lower()}"
        out.append(
            Cell(
                f'{summary} = release.section("{letter}", {", ".join(results)})\n{summary}',
                (summary,),
                refs=("release", *results),
            )
        )
        prev_summary = summary
        after = (summary,)
        if letter == "D":  # the prepared plan (E, above) is run here, after production, before F
            out.append(_md("### Roll back\n\nOnly if production is hurt after the deploy (D5–D7): runs the plan prepared in section E — the previous version back, the schema undone in the order the plan says. Each step runs once and is journaled."))
            out.append(Cell('rollback_go = relnb.ui.run_button("E3", "Roll back production now")', ("rollback_go",), refs=("relnb",), jupyter=""))
            out.append(
                Cell(
                    "rollback = release.rollback(confirmed=rollback_go)\nrelnb.ui.rollback_view(release, rollback, rollback_go)",
                    ("rollback",),
                    refs=("relnb", "release", "rollback_go", summary),
                    jupyter="rollback = relnb.ui.rollback(release)\nrollback",
                )
            )
            after = (summary, "rollback")  # F records what shipped: only after the rollback had its say
    out.append(_md("## Release status\n\nThe whole checklist, folded from the journal."))
    out.append(Cell("release.status()", refs=("release", prev_summary or "release")))
    out.append(_md("## Archive\n\nSeal the release: notebook, HTML, ipynb, journal, samples, incidents, changelog and a manifest go into `releases/<id>/`; afterwards the journal refuses appends."))
    out.append(Cell('archive_go = relnb.ui.run_button("F3", "Seal the release (archive)")', ("archive_go",), refs=("relnb",), jupyter=""))
    out.append(
        Cell(
            "relnb.ui.seal_view(release, relnb.archive.archive(release, confirmed=archive_go), archive_go)",
            refs=("relnb", "release", "archive_go", prev_summary or "release"),
            jupyter="relnb.ui.seal(release)",
        )
    )
    return out


def render_marimo() -> str:
    parts = [
        "import marimo\n",
        f'__generated_with = "{MARIMO_VERSION}"',
        'app = marimo.App(width="medium", app_title="relnb release")\n',
    ]
    for c in cells():
        args = ", ".join(sorted(set(c.refs)))
        body = "\n".join("    " + ln if ln else "" for ln in c.code.splitlines())
        ret = ""
        if c.defines:
            ret = "\n    return (" + ", ".join(c.defines) + ("," if len(c.defines) == 1 else "") + ")"
        else:
            ret = "\n    return"
        parts.append(f"\n@app.cell\ndef _({args}):\n{body}{ret}\n")
    parts.append('\nif __name__ == "__main__":\n    app.run()\n')
    return "\n".join(parts)


def render_ipynb() -> str:
    nb_cells = []
    for c in cells():
        cid = f"cell-{len(nb_cells):03d}"  # nbformat 4.5 wants ids (a missing one is a warning now, an error later)
        if c.markdown is not None:
            nb_cells.append({"cell_type": "markdown", "id": cid, "metadata": {}, "source": c.markdown})
        elif c.jupyter != "":
            code = c.code if c.jupyter is None else c.jupyter
            nb_cells.append(
                {"cell_type": "code", "execution_count": None, "id": cid, "metadata": {}, "outputs": [], "source": code}
            )
    nb = {
        "cells": nb_cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "relnb": {"template": "release", "gates": [g.id for g in GATES]},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def bundled_template_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates", here.parent / "templates"):
        if (candidate / "release.py").is_file():
            return candidate
    raise FileNotFoundError("relnb's templates are missing from this installation")


def review_notebook() -> Path:
    """The review dashboard notebook shipped with relnb (the repository's notebooks/review.py)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates" / "review.py", here.parent / "notebooks" / "review.py"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("relnb's review notebook is missing from this installation")


def template_path(root: Path, fmt: str) -> Path:
    name = "release.ipynb" if fmt == "ipynb" else "release.py"
    local = root / "templates" / name
    return local if local.is_file() else bundled_template_dir() / name


def instantiate(template: Path, release_id: str) -> tuple[str, str]:
    """The notebook text for a release, and the template's sha256 (journaled for provenance)."""
    text = template.read_text(encoding="utf-8")
    if PLACEHOLDER not in text:
        raise ValueError(f"{template} has no {PLACEHOLDER} placeholder")
    return text.replace(PLACEHOLDER, release_id), hashlib.sha256(text.encode()).hexdigest()
