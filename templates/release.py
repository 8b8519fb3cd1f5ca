import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="relnb release")


@app.cell
def _():
    import marimo as mo
    import relnb
    return (mo, relnb)


@app.cell
def _(mo):
    mo.md(r"""
    # Release __RELEASE_ID__

    Each cell below is one item of the release checklist (docs/release-checklist.md). Automatic gates run and record evidence; sign-offs wait for a person; actions wait for their button and run once. The journal in `releases/__RELEASE_ID__/` is the record: re-running a cell or reloading the page repeats nothing.
    """)
    return


@app.cell
def _(relnb):
    release = relnb.Release.open("__RELEASE_ID__")
    release
    return (release,)


@app.cell
def _(mo):
    mo.md(r"""
    ## A) Pre-merge checklist (PR-level)

    - **A1** All CI checks green (unit + integration + migrations + e2e smoke) — check
    - **A2** New endpoints documented (OpenAPI updated) — check
    - **A3** New DB migration is included and reviewed — sign-off
    - **A4** Backwards compatibility considered (expand/contract if needed) — sign-off
    - **A5** Feature flag added if risky / partially rolled out — sign-off
    - **A6** Runbook references — check
    """)
    return


@app.cell
def _(release):
    a1 = release.check("A1")
    a1
    return (a1,)


@app.cell
def _(release):
    a2 = release.check("A2")
    a2
    return (a2,)


@app.cell
def _(release, relnb):
    a3_form = relnb.ui.sign_off_form(release, "A3")
    a3_form
    return (a3_form,)


@app.cell
def _(a3_form, release):
    a3 = release.check("A3", submitted=a3_form.value)
    a3
    return (a3,)


@app.cell
def _(release, relnb):
    a4_form = relnb.ui.sign_off_form(release, "A4")
    a4_form
    return (a4_form,)


@app.cell
def _(a4_form, release):
    a4 = release.check("A4", submitted=a4_form.value)
    a4
    return (a4,)


@app.cell
def _(release, relnb):
    a5_form = relnb.ui.sign_off_form(release, "A5")
    a5_form
    return (a5_form,)


@app.cell
def _(a5_form, release):
    a5 = release.check("A5", submitted=a5_form.value)
    a5
    return (a5,)


@app.cell
def _(release):
    a6 = release.check("A6")
    a6
    return (a6,)


@app.cell
def _(a1, a2, a3, a4, a5, a6, release):
    section_a = release.section("A", a1, a2, a3, a4, a5, a6)
    section_a
    return (section_a,)


@app.cell
def _(mo):
    mo.md(r"""
    ## B) Staging deployment checklist

    - **B1** Deploy to staging automatically from main — check
    - **B2** Run migrate deploy on staging DB — action
    - **B3** (Optional) build/publish images *(optional)* — action
    - **B4** VPS deploy artifacts — check
    - **B5** Smoke test flows — check
    - **B6** Verify worker queues are processing (no stuck jobs) — check
    - **B7** Verify DLQ count is stable/zero — check
    - **B8** Verify logs show no new error spikes — check
    - **B9** Verify CORS + redirect URIs correct for staging frontends — check
    """)
    return


@app.cell
def _(release, section_a):
    b1 = release.check("B1")
    b1
    return (b1,)


@app.cell
def _(relnb):
    b2_go = relnb.ui.confirm("B2")
    b2_go
    return (b2_go,)


@app.cell
def _(b2_go, release, section_a):
    b2 = release.act("B2", confirmed=b2_go)
    b2
    return (b2,)


@app.cell
def _(mo, relnb):
    b3_go = relnb.ui.confirm("B3")
    b3_skip = relnb.ui.skip_form("B3")
    mo.vstack([b3_go, b3_skip]) if b3_skip is not None else b3_go
    return (b3_go, b3_skip)


@app.cell
def _(b3_go, b3_skip, release, section_a):
    b3 = release.act("B3", confirmed=b3_go, skip=b3_skip)
    b3
    return (b3,)


@app.cell
def _(release, section_a):
    b4 = release.check("B4")
    b4
    return (b4,)


@app.cell
def _(release, section_a):
    b5 = release.check("B5")
    b5
    return (b5,)


@app.cell
def _(release, section_a):
    b6 = release.check("B6")
    b6
    return (b6,)


@app.cell
def _(release, section_a):
    b7 = release.check("B7")
    b7
    return (b7,)


@app.cell
def _(release, section_a):
    b8 = release.check("B8")
    b8
    return (b8,)


@app.cell
def _(release, section_a):
    b9 = release.check("B9")
    b9
    return (b9,)


@app.cell
def _(b1, b2, b3, b4, b5, b6, b7, b8, b9, release):
    section_b = release.section("B", b1, b2, b3, b4, b5, b6, b7, b8, b9)
    section_b
    return (section_b,)


@app.cell
def _(mo):
    mo.md(r"""
    ## C) Production readiness checklist (gate before promote)

    - **C1** Confirm staging has run for N hours without error spikes — check
    - **C2** Confirm DB backup is available (automatic snapshot) — check
    - **C3** Confirm migration is safe — check
    - **C4** Confirm secrets exist in prod (Keycloak URLs, S3 keys, Redis, DB) — check
    - **C5** Confirm dashboards/alerts working (logs, metrics, error tracking) — check
    """)
    return


@app.cell
def _(release, section_b):
    c1 = release.check("C1")
    c1
    return (c1,)


@app.cell
def _(release, section_b):
    c2 = release.check("C2")
    c2
    return (c2,)


@app.cell
def _(release, section_b):
    c3 = release.check("C3")
    c3
    return (c3,)


@app.cell
def _(release, section_b):
    c4 = release.check("C4")
    c4
    return (c4,)


@app.cell
def _(release, section_b):
    c5 = release.check("C5")
    c5
    return (c5,)


@app.cell
def _(c1, c2, c3, c4, c5, release):
    section_c = release.section("C", c1, c2, c3, c4, c5)
    section_c
    return (section_c,)


@app.cell
def _(mo):
    mo.md(r"""
    ## E) Rollback plan (must be prepared)

    - **E1** Previous Docker image tag available — check
    - **E2** If migration is non-reversible, rollback = redeploy old app + hotfix forward — check
    - **E3** If reversible: run down migration (rare) OR restore snapshot — check

    Prepared before D starts; the rollback cell after section D runs this plan if production is hurt.
    """)
    return


@app.cell
def _(release, section_c):
    e1 = release.check("E1")
    e1
    return (e1,)


@app.cell
def _(release, section_c):
    e2 = release.check("E2")
    e2
    return (e2,)


@app.cell
def _(release, section_c):
    e3 = release.check("E3")
    e3
    return (e3,)


@app.cell
def _(e1, e2, e3, release):
    section_e = release.section("E", e1, e2, e3)
    section_e
    return (section_e,)


@app.cell
def _(mo):
    mo.md(r"""
    ## D) Production deployment steps

    - **D1** Put system in “safe mode” if needed *(optional)* — action
    - **D2** Take/confirm fresh DB snapshot — action
    - **D3** Run migrations (prisma migrate deploy) — action
    - **D4** Deploy new API + worker images — action
    - **D5** Run production smoke tests — check
    - **D6** (Optional) scripted smoke check if you can supply bearer tokens *(optional)* — action
    - **D7** Monitor for 30–60 minutes — check

    Every cell here refuses to run until A–C are passed, skipped or waived.
    """)
    return


@app.cell
def _(mo, relnb):
    d1_go = relnb.ui.confirm("D1")
    d1_skip = relnb.ui.skip_form("D1")
    mo.vstack([d1_go, d1_skip]) if d1_skip is not None else d1_go
    return (d1_go, d1_skip)


@app.cell
def _(d1_go, d1_skip, release, section_e):
    d1 = release.act("D1", confirmed=d1_go, skip=d1_skip)
    d1
    return (d1,)


@app.cell
def _(relnb):
    d2_go = relnb.ui.confirm("D2")
    d2_go
    return (d2_go,)


@app.cell
def _(d2_go, release, section_e):
    d2 = release.act("D2", confirmed=d2_go)
    d2
    return (d2,)


@app.cell
def _(relnb):
    d3_go = relnb.ui.confirm("D3")
    d3_go
    return (d3_go,)


@app.cell
def _(d3_go, release, section_e):
    d3 = release.act("D3", confirmed=d3_go)
    d3
    return (d3,)


@app.cell
def _(relnb):
    d4_go = relnb.ui.confirm("D4")
    d4_go
    return (d4_go,)


@app.cell
def _(d4_go, release, section_e):
    d4 = release.act("D4", confirmed=d4_go)
    d4
    return (d4,)


@app.cell
def _(release, section_e):
    d5 = release.check("D5")
    d5
    return (d5,)


@app.cell
def _(mo, relnb):
    d6_go = relnb.ui.confirm("D6")
    d6_skip = relnb.ui.skip_form("D6")
    mo.vstack([d6_go, d6_skip]) if d6_skip is not None else d6_go
    return (d6_go, d6_skip)


@app.cell
def _(d6_go, d6_skip, release, section_e):
    d6 = release.act("D6", confirmed=d6_go, skip=d6_skip)
    d6
    return (d6,)


@app.cell
def _(release, section_e):
    d7 = release.check("D7")
    d7
    return (d7,)


@app.cell
def _(d1, d2, d3, d4, d5, d6, d7, release):
    section_d = release.section("D", d1, d2, d3, d4, d5, d6, d7)
    section_d
    return (section_d,)


@app.cell
def _(mo):
    mo.md(r"""
    ### Roll back

    Only if production is hurt after the deploy (D5–D7): runs the plan prepared in section E — the previous version back, the schema undone in the order the plan says. Each step runs once and is journaled.
    """)
    return


@app.cell
def _(relnb):
    rollback_go = relnb.ui.confirm("E3", "Roll back production now")
    rollback_go
    return (rollback_go,)


@app.cell
def _(release, rollback_go, section_d):
    rollback = release.rollback(confirmed=rollback_go)
    rollback
    return (rollback,)


@app.cell
def _(mo):
    mo.md(r"""
    ## F) Post-release

    - **F1** Tag release in git — action
    - **F2** Record any incidents + add tests for any bugs found — check
    - **F3** Update changelog — action
    """)
    return


@app.cell
def _(relnb):
    f1_go = relnb.ui.confirm("F1")
    f1_go
    return (f1_go,)


@app.cell
def _(f1_go, release, rollback, section_d):
    f1 = release.act("F1", confirmed=f1_go)
    f1
    return (f1,)


@app.cell
def _(release, rollback, section_d):
    f2 = release.check("F2")
    f2
    return (f2,)


@app.cell
def _(relnb):
    f3_go = relnb.ui.confirm("F3")
    f3_go
    return (f3_go,)


@app.cell
def _(f3_go, release, rollback, section_d):
    f3 = release.act("F3", confirmed=f3_go)
    f3
    return (f3,)


@app.cell
def _(f1, f2, f3, release):
    section_f = release.section("F", f1, f2, f3)
    section_f
    return (section_f,)


@app.cell
def _(mo):
    mo.md(r"""
    ## Release status

    The whole checklist, folded from the journal.
    """)
    return


@app.cell
def _(release, section_f):
    release.status()
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Archive

    Seal the release: notebook, HTML, ipynb, journal, samples, incidents, changelog and a manifest go into `releases/<id>/`; afterwards the journal refuses appends.
    """)
    return


@app.cell
def _(relnb):
    archive_go = relnb.ui.confirm("F3", "Seal the release (archive)")
    archive_go
    return (archive_go,)


@app.cell
def _(archive_go, release, relnb, section_f):
    relnb.archive.archive(release, confirmed=archive_go)
    return


if __name__ == "__main__":
    app.run()
