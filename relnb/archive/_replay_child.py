"""Child process of `relnb replay`: network off, providers from the archive, run the notebook."""

from __future__ import annotations

import os
import runpy
import sys


def main(notebook: str) -> int:
    from relnb.journal import read_events

    from .replay import (
        ENV_REPLAY,
        ArchivedOutcomes,
        inputs_from_events,
        install_network_guard,
        install_replay_providers,
        install_waiver_hook,
    )

    install_network_guard()
    inputs = inputs_from_events(
        [e for e in read_events(os.environ[ENV_REPLAY]) if e.type != "sealed"]
    )
    install_replay_providers(inputs)
    from relnb.release import RunContext

    RunContext.use_recorded(ArchivedOutcomes(inputs))
    from relnb.config import load_config
    from relnb.journal import JournalWriter
    from relnb.release import find_root, release_dir

    config = load_config(start=find_root())
    rid = read_events(os.environ[ENV_REPLAY])[0].payload["release_id"]
    writer = JournalWriter.open(release_dir(config.root, rid, config))
    install_waiver_hook(writer, inputs)
    if notebook.endswith(".ipynb"):
        import nbformat

        nb = nbformat.read(notebook, as_version=4)
        namespace: dict = {"__name__": "__main__"}
        for cell in nb.cells:
            if cell.cell_type == "code":
                exec(compile(cell.source, notebook, "exec"), namespace)
    else:
        runpy.run_path(notebook, run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
