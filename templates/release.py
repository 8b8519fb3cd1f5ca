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
    return (release,)


@app.cell
def _(relnb):
    header_tick = relnb.ui.ticker()
    return (header_tick,)


@app.cell
def _(header_tick, release, relnb):
    relnb.ui.summary(release, header_tick)
    return


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
def _(release, relnb):
    a1_form = relnb.ui.sign_off_input(release, "A1")
    return (a1_form,)


@app.cell
def _(a1_form, release, relnb):
    a1 = release.check("A1", submitted=a1_form.value)
    relnb.ui.sign_off_view(release, a1, a1_form)
    return (a1,)


@app.cell
def _(release, relnb):
    a2_form = relnb.ui.sign_off_input(release, "A2")
    return (a2_form,)


@app.cell
def _(a2_form, release, relnb):
    a2 = release.check("A2", submitted=a2_form.value)
    relnb.ui.sign_off_view(release, a2, a2_form)
    return (a2,)


@app.cell
def _(release, relnb):
    a3_form = relnb.ui.sign_off_input(release, "A3")
    return (a3_form,)


@app.cell
def _(a3_form, release, relnb):
    a3 = release.check("A3", submitted=a3_form.value)
    relnb.ui.sign_off_view(release, a3, a3_form)
    return (a3,)


@app.cell
def _(release, relnb):
    a4_form = relnb.ui.sign_off_input(release, "A4")
    return (a4_form,)


@app.cell
def _(a4_form, release, relnb):
    a4 = release.check("A4", submitted=a4_form.value)
    relnb.ui.sign_off_view(release, a4, a4_form)
    return (a4,)


@app.cell
def _(release, relnb):
    a5_form = relnb.ui.sign_off_input(release, "A5")
    return (a5_form,)


@app.cell
def _(a5_form, release, relnb):
    a5 = release.check("A5", submitted=a5_form.value)
    relnb.ui.sign_off_view(release, a5, a5_form)
    return (a5,)


@app.cell
def _(release, relnb):
    a6_form = relnb.ui.sign_off_input(release, "A6")
    return (a6_form,)


@app.cell
def _(a6_form, release, relnb):
    a6 = release.check("A6", submitted=a6_form.value)
    relnb.ui.sign_off_view(release, a6, a6_form)
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
    - **B2** Run migrations on the staging database — action
    - **B3** (Optional) build/publish release artifacts *(optional)* — action
    - **B4** Deploy artifacts and environment templates — check
    - **B5** Smoke test flows — check
    - **B6** Verify worker queues are processing (no stuck jobs) — check
    - **B7** Verify DLQ count is stable/zero — check
    - **B8** Verify logs show no new error spikes — check
    - **B9** Verify CORS + redirect URIs correct for staging frontends — check
    """)
    return


@app.cell
def _(release, relnb):
    b1_form = relnb.ui.sign_off_input(release, "B1")
    return (b1_form,)


@app.cell
def _(b1_form, release, relnb, section_a):
    b1 = release.check("B1", submitted=b1_form.value)
    relnb.ui.sign_off_view(release, b1, b1_form)
    return (b1,)


@app.cell
def _(relnb):
    b2_go = relnb.ui.run_button("B2")
    return (b2_go,)


@app.cell
def _(b2_go, release, relnb, section_a):
    b2 = release.act("B2", confirmed=b2_go)
    relnb.ui.action_view(release, b2, b2_go)
    return (b2,)


@app.cell
def _(relnb):
    b3_go = relnb.ui.run_button("B3")
    b3_skip = relnb.ui.skip_input("B3")
    return (b3_go, b3_skip)


@app.cell
def _(b3_go, b3_skip, release, relnb, section_a):
    b3 = release.act("B3", confirmed=b3_go, skip=b3_skip)
    relnb.ui.action_view(release, b3, b3_go, b3_skip)
    return (b3,)


@app.cell
def _(release, relnb):
    b4_form = relnb.ui.sign_off_input(release, "B4")
    return (b4_form,)


@app.cell
def _(b4_form, release, relnb, section_a):
    b4 = release.check("B4", submitted=b4_form.value)
    relnb.ui.sign_off_view(release, b4, b4_form)
    return (b4,)


@app.cell
def _(release, relnb):
    b5_form = relnb.ui.sign_off_input(release, "B5")
    return (b5_form,)


@app.cell
def _(b5_form, release, relnb, section_a):
    b5 = release.check("B5", submitted=b5_form.value)
    relnb.ui.sign_off_view(release, b5, b5_form)
    return (b5,)


@app.cell
def _(release, relnb):
    b6_form = relnb.ui.sign_off_input(release, "B6")
    return (b6_form,)


@app.cell
def _(b6_form, release, relnb, section_a):
    b6 = release.check("B6", submitted=b6_form.value)
    relnb.ui.sign_off_view(release, b6, b6_form)
    return (b6,)


@app.cell
def _(release, relnb):
    b7_form = relnb.ui.sign_off_input(release, "B7")
    return (b7_form,)


@app.cell
def _(b7_form, release, relnb, section_a):
    b7 = release.check("B7", submitted=b7_form.value)
    relnb.ui.sign_off_view(release, b7, b7_form)
    return (b7,)


@app.cell
def _(release, relnb):
    b8_form = relnb.ui.sign_off_input(release, "B8")
    return (b8_form,)


@app.cell
def _(b8_form, release, relnb, section_a):
    b8 = release.check("B8", submitted=b8_form.value)
    relnb.ui.sign_off_view(release, b8, b8_form)
    return (b8,)


@app.cell
def _(release, relnb):
    b9_form = relnb.ui.sign_off_input(release, "B9")
    return (b9_form,)


@app.cell
def _(b9_form, release, relnb, section_a):
    b9 = release.check("B9", submitted=b9_form.value)
    relnb.ui.sign_off_view(release, b9, b9_form)
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
    - **C4** Confirm secrets exist in production — check
    - **C5** Confirm dashboards/alerts working (logs, metrics, error tracking) — check
    """)
    return


@app.cell
def _(release, relnb):
    c1_form = relnb.ui.sign_off_input(release, "C1")
    return (c1_form,)


@app.cell
def _(c1_form, release, relnb, section_b):
    c1 = release.check("C1", submitted=c1_form.value)
    relnb.ui.sign_off_view(release, c1, c1_form)
    return (c1,)


@app.cell
def _(release, relnb):
    c2_form = relnb.ui.sign_off_input(release, "C2")
    return (c2_form,)


@app.cell
def _(c2_form, release, relnb, section_b):
    c2 = release.check("C2", submitted=c2_form.value)
    relnb.ui.sign_off_view(release, c2, c2_form)
    return (c2,)


@app.cell
def _(release, relnb):
    c3_form = relnb.ui.sign_off_input(release, "C3")
    return (c3_form,)


@app.cell
def _(c3_form, release, relnb, section_b):
    c3 = release.check("C3", submitted=c3_form.value)
    relnb.ui.sign_off_view(release, c3, c3_form)
    return (c3,)


@app.cell
def _(release, relnb):
    c4_form = relnb.ui.sign_off_input(release, "C4")
    return (c4_form,)


@app.cell
def _(c4_form, release, relnb, section_b):
    c4 = release.check("C4", submitted=c4_form.value)
    relnb.ui.sign_off_view(release, c4, c4_form)
    return (c4,)


@app.cell
def _(release, relnb):
    c5_form = relnb.ui.sign_off_input(release, "C5")
    return (c5_form,)


@app.cell
def _(c5_form, release, relnb, section_b):
    c5 = release.check("C5", submitted=c5_form.value)
    relnb.ui.sign_off_view(release, c5, c5_form)
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

    - **E1** Previous version's artifact available — check
    - **E2** If migration is non-reversible, rollback = redeploy old app + hotfix forward — check
    - **E3** If reversible: run down migration (rare) OR restore snapshot — check

    Prepared before D starts; the rollback cell after section D runs this plan if production is hurt.
    """)
    return


@app.cell
def _(release, relnb):
    e1_form = relnb.ui.sign_off_input(release, "E1")
    return (e1_form,)


@app.cell
def _(e1_form, release, relnb, section_c):
    e1 = release.check("E1", submitted=e1_form.value)
    relnb.ui.sign_off_view(release, e1, e1_form)
    return (e1,)


@app.cell
def _(release, relnb):
    e2_form = relnb.ui.sign_off_input(release, "E2")
    return (e2_form,)


@app.cell
def _(e2_form, release, relnb, section_c):
    e2 = release.check("E2", submitted=e2_form.value)
    relnb.ui.sign_off_view(release, e2, e2_form)
    return (e2,)


@app.cell
def _(release, relnb):
    e3_form = relnb.ui.sign_off_input(release, "E3")
    return (e3_form,)


@app.cell
def _(e3_form, release, relnb, section_c):
    e3 = release.check("E3", submitted=e3_form.value)
    relnb.ui.sign_off_view(release, e3, e3_form)
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
    - **D3** Run migrations — action
    - **D4** Deploy the new version — action
    - **D5** Run production smoke tests — check
    - **D6** (Optional) scripted smoke check if you can supply bearer tokens *(optional)* — action
    - **D7** Monitor for 30–60 minutes — check

    Every cell here refuses to run until A–C are passed, skipped or waived.
    """)
    return


@app.cell
def _(relnb):
    d1_go = relnb.ui.run_button("D1")
    d1_skip = relnb.ui.skip_input("D1")
    return (d1_go, d1_skip)


@app.cell
def _(d1_go, d1_skip, release, relnb, section_e):
    d1 = release.act("D1", confirmed=d1_go, skip=d1_skip)
    relnb.ui.action_view(release, d1, d1_go, d1_skip)
    return (d1,)


@app.cell
def _(relnb):
    d2_go = relnb.ui.run_button("D2")
    return (d2_go,)


@app.cell
def _(d2_go, release, relnb, section_e):
    d2 = release.act("D2", confirmed=d2_go)
    relnb.ui.action_view(release, d2, d2_go)
    return (d2,)


@app.cell
def _(relnb):
    d3_go = relnb.ui.run_button("D3")
    return (d3_go,)


@app.cell
def _(d3_go, release, relnb, section_e):
    d3 = release.act("D3", confirmed=d3_go)
    relnb.ui.action_view(release, d3, d3_go)
    return (d3,)


@app.cell
def _(relnb):
    d4_go = relnb.ui.run_button("D4")
    return (d4_go,)


@app.cell
def _(d4_go, release, relnb, section_e):
    d4 = release.act("D4", confirmed=d4_go)
    relnb.ui.action_view(release, d4, d4_go)
    return (d4,)


@app.cell
def _(release, relnb):
    d5_form = relnb.ui.sign_off_input(release, "D5")
    return (d5_form,)


@app.cell
def _(d5_form, release, relnb, section_e):
    d5 = release.check("D5", submitted=d5_form.value)
    relnb.ui.sign_off_view(release, d5, d5_form)
    return (d5,)


@app.cell
def _(relnb):
    d6_go = relnb.ui.run_button("D6")
    d6_skip = relnb.ui.skip_input("D6")
    return (d6_go, d6_skip)


@app.cell
def _(d6_go, d6_skip, release, relnb, section_e):
    d6 = release.act("D6", confirmed=d6_go, skip=d6_skip)
    relnb.ui.action_view(release, d6, d6_go, d6_skip)
    return (d6,)


@app.cell
def _(release, relnb):
    d7_form = relnb.ui.sign_off_input(release, "D7")
    return (d7_form,)


@app.cell
def _(d7_form, release, relnb, section_e):
    d7 = release.check("D7", submitted=d7_form.value)
    relnb.ui.sign_off_view(release, d7, d7_form)
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
    rollback_go = relnb.ui.run_button("E3", "Roll back production now")
    return (rollback_go,)


@app.cell
def _(release, relnb, rollback_go, section_d):
    rollback = release.rollback(confirmed=rollback_go)
    relnb.ui.rollback_view(release, rollback, rollback_go)
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
    f1_go = relnb.ui.run_button("F1")
    return (f1_go,)


@app.cell
def _(f1_go, release, relnb, rollback, section_d):
    f1 = release.act("F1", confirmed=f1_go)
    relnb.ui.action_view(release, f1, f1_go)
    return (f1,)


@app.cell
def _(release, relnb):
    f2_form = relnb.ui.sign_off_input(release, "F2")
    return (f2_form,)


@app.cell
def _(f2_form, release, relnb, rollback, section_d):
    f2 = release.check("F2", submitted=f2_form.value)
    relnb.ui.sign_off_view(release, f2, f2_form)
    return (f2,)


@app.cell
def _(relnb):
    f3_go = relnb.ui.run_button("F3")
    return (f3_go,)


@app.cell
def _(f3_go, release, relnb, rollback, section_d):
    f3 = release.act("F3", confirmed=f3_go)
    relnb.ui.action_view(release, f3, f3_go)
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
    archive_go = relnb.ui.run_button("F3", "Seal the release (archive)")
    return (archive_go,)


@app.cell
def _(archive_go, release, relnb, section_f):
    relnb.ui.seal_view(release, relnb.archive.archive(release, confirmed=archive_go), archive_go)
    return


if __name__ == "__main__":
    app.run()
