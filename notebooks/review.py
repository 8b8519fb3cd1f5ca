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
    return releases_dir, rows


@app.cell
def _(dora, mo, releases_dir, rows):
    # The figures count sealed releases only (definitions: relnb/archive/dora.py); open ones are
    # listed in the table below, marked, and counted nowhere: their outcome can still change.
    mo.md(
        f"# Release review — `{releases_dir}`\n\n"
        + "\n".join(f"- **{k}**: {v}" for k, v in dora.metric_lines(rows))
    )
    return


@app.cell
def _(rows):
    import altair as alt
    import pandas as pd

    timeline = pd.DataFrame(
        [
            {"release": r["release_id"] + (" (open)" if r.get("status") == "open" else ""),
             "start": r.get("created_at"), "end": r.get("deployed_at") or r.get("last_event_at"),
             "verdict": r.get("verdict")}
            for r in rows
        ]
    )
    chart = (
        alt.Chart(timeline).mark_bar().encode(x="start:T", x2="end:T", y="release:N", color="verdict:N")
        if len(timeline) else None
    )
    chart  # noqa: B018 (marimo shows a cell's last expression)
    return alt, pd


@app.cell
def _(alt, dora, mo, pd, rows):
    # Only the gates that failed in some sealed release; none failing is said, not drawn empty.
    counts = dora.gate_failure_counts(rows)
    freq = pd.DataFrame(
        [{"gate": g, "failure_share": n / total, "failed in": f"{n} of {total} releases"} for g, n, total in counts]
    )
    (
        mo.vstack([
            mo.md("## Gate failure frequency"),
            alt.Chart(freq).mark_bar(color="#cf222e").encode(
                x=alt.X("failure_share:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
                y=alt.Y("gate:N", sort="-x"),
                tooltip=["gate", "failed in"],
            ),
        ])
        if counts
        else mo.md("## Gate failure frequency\n\nNo gate failed in any sealed release.")
    )
    return


@app.cell
def _(dora, mo, rows):
    table = dora.release_table(rows)
    mo.md(
        "## Releases\n\n"
        + (
            "| " + " | ".join(table[0]) + " |\n|" + "---|" * len(table[0]) + "\n"
            + "\n".join("| " + " | ".join(str(v).replace("|", "/") for v in t.values()) + " |" for t in table)
            if table
            else "No releases."
        )
    )
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
