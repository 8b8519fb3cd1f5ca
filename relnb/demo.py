"""`relnb.demo`: the demo's name inside relnb's namespace; the demo itself is `relnb_demo`.

Importing it without the `demo` extra fails with the `pip install 'relnb[demo]'` line from
relnb_demo; the library never imports it (only the CLI's `relnb demo` does).
"""

from relnb_demo import run_demo

__all__ = ["run_demo"]
