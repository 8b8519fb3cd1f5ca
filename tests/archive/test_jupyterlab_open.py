"""issue 21: opening a sealed release.ipynb in JupyterLab saves it again (nbformat's JSON layout,
kernel metadata, sources split into lines) and leaves `.ipynb_checkpoints/` beside it. That is
not tampering: `relnb verify` still passes and says what Jupyter left. A real change of a cell's
source or output still fails verification.

JupyterLab is not installed here, so its save is reproduced the way jupyter_server does it: the
notebook read with nbformat, the frontend's metadata added, written back with nbformat.write,
and the checkpoint copy written under `.ipynb_checkpoints/`.
"""

from __future__ import annotations

import shutil

import nbformat
import pytest

from relnb import Release
from relnb.archive import archive_release, verify_release_dir

from .builders import finish, project_with_history


@pytest.fixture
def sealed(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    project = project_with_history(tmp_path / "proj")
    r = Release.create("1.1.0", root=project)
    finish(r)
    r.close()
    res = archive_release("1.1.0", root=project)
    assert verify_release_dir(res.directory).ok
    return res.directory


def jupyterlab_open_and_save(path) -> None:
    """What JupyterLab does to a notebook it opens: a checkpoint copy, then an autosave of the
    same cells with the frontend's metadata."""
    checkpoints = path.parent / ".ipynb_checkpoints"
    checkpoints.mkdir(exist_ok=True)
    shutil.copyfile(path, checkpoints / f"{path.stem}-checkpoint.ipynb")
    nb = nbformat.read(path, as_version=4)
    nb.metadata["language_info"] = {
        "codemirror_mode": {"name": "ipython", "version": 3},
        "file_extension": ".py",
        "mimetype": "text/x-python",
        "name": "python",
        "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3",
        "version": "3.11.2",
    }
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
    before = path.read_bytes()
    nbformat.write(nb, path)
    assert path.read_bytes() != before  # the save really changed the bytes


def test_release_ipynb_opened_in_jupyterlab_still_verifies(sealed):
    jupyterlab_open_and_save(sealed / "release.ipynb")
    report = verify_release_dir(sealed)
    assert report.ok, report.summary
    notes = getattr(report, "notes", None)
    assert notes is not None, "verify reports what Jupyter left in notes"
    assert any(".ipynb_checkpoints" in n for n in notes), notes
    assert any(n.startswith("release.ipynb:") for n in notes), notes


def test_a_real_change_of_the_notebook_still_fails(sealed):
    path = sealed / "release.ipynb"
    jupyterlab_open_and_save(path)
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.outputs)
    cell.outputs[0]["data"]["text/plain"] = "[PASS] everything fine"
    nbformat.write(nb, path)
    report = verify_release_dir(sealed)
    assert not report.ok
    assert any(p.name == "release.ipynb" and "changed" in p.problem for p in report.problems), report.summary


def test_a_changed_source_fails_and_a_file_hidden_next_to_checkpoints_is_still_named(sealed):
    path = sealed / "release.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.source += "\n# edited"
    nbformat.write(nb, path)
    (sealed / "extra.txt").write_text("planted")
    report = verify_release_dir(sealed)
    names = {p.name for p in report.problems}
    assert {"release.ipynb", "extra.txt"} <= names, report.summary
