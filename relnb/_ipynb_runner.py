"""Execute a Jupyter release notebook headlessly (child process of `relnb run`)."""

from __future__ import annotations

import sys


def main(path: str) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=None, kernel_name="python3", allow_errors=False)
    try:
        client.execute()
    except CellExecutionError as exc:
        print(str(exc)[-4000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
