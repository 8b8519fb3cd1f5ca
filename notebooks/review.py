import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="relnb review")


@app.cell
def _():
    import os
    import sys
    from pathlib import Path

    import marimo as mo

    from relnb.archive import dora

    return Path, dora, mo, os, sys


@app.cell
def _(Path, dora, os):
    releases_dir = Path(os.environ.get("RELNB_RELEASES_DIR", "releases"))
    rows = dora.load_rows(releases_dir)
    metrics = dora.dora_metrics(rows)
    failures = dora.gate_failure_frequency(rows)
    return failures, metrics, releases_dir, rows


@app.cell
def _(metrics, mo, releases_dir):
    mo.md(
        f"# Release review — `{releases_dir}`\n\n"
        + "\n".join(f"- **{k.replace('_', ' ')}**: {v}" for k, v in metrics.items())
    )
    return


@app.cell
def _(rows):
    import altair as alt
    import pandas as pd

    timeline = pd.DataFrame(
        [
            {"release": r["release_id"], "start": r.get("created_at"), "end": r.get("deployed_at") or r.get("last_event_at"),
             "verdict": r.get("verdict")}
            for r in rows
        ]
    )
    chart = (
        alt.Chart(timeline).mark_bar().encode(x="start:T", x2="end:T", y="release:N", color="verdict:N")
        if len(timeline) else None
    )
    chart
    return alt, pd


@app.cell
def _(alt, failures, pd):
    freq = pd.DataFrame([{"gate": g, "failure_share": v} for g, v in failures.items()])
    alt.Chart(freq).mark_bar().encode(x="gate:N", y="failure_share:Q")
    return


@app.cell
def _(dora, mo, rows):
    # Every approval with its signature mark: UNSIGNED ones are the decisions nobody can vouch for.
    approvals = dora.approval_rows(rows)
    mo.md(
        "## Approvals\n\n"
        + (
            "| release | seq | gate | signature | approval |\n|---|---|---|---|---|\n"
            + "\n".join(
                f"| {a['release']} | {a['seq']} | {a['gate']} | "
                + (a["mark"] if a["signed"] else f"**{a['mark']}**")
                + f" | {a['approval'].replace('|', '/')} |"
                for a in approvals
            )
            if approvals
            else "No approvals recorded."
        )
    )
    return


@app.cell
def _(dora, os, releases_dir, sys):
    # Headless: `python notebooks/review.py --html out.html` (or RELNB_REVIEW_HTML=out.html)
    out = os.environ.get("RELNB_REVIEW_HTML")
    if "--html" in sys.argv:
        out = sys.argv[sys.argv.index("--html") + 1]
    if out:
        dora.write_report(releases_dir, out)
    return


if __name__ == "__main__":
    app.run()
