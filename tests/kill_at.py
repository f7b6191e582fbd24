"""Run the `linkage` CLI and SIGKILL the process at a named point (test_crash_safety.py).

    python -m tests.kill_at POINT nightly --config ... --run-date ...

A real kill of a real process, with nothing in the product waiting for it: the named
function is wrapped, in this process only, to kill it before or after running.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any

# point -> (module, function, kill before or after it runs)
POINTS = {
    "standardise": ("linkage.night", "_standardise", "after"),  # before validating
    "link": ("linkage.index", "cluster_records", "before"),  # scored, not clustered
    "publish": ("linkage.index", "publish_person_sql", "before"),  # inside the transaction
    "export": ("linkage.export", "write_manifest", "after"),  # one agency's files written
    "reveal": ("linkage.staged", "reveal", "before"),  # committed, no file moved into place
}


def main() -> None:
    point, *arguments = sys.argv[1:]
    module_name, name, when = POINTS[point]
    module = importlib.import_module(module_name)
    original = getattr(module, name)

    def killing(*args: Any, **kwargs: Any) -> Any:
        if when == "after":
            original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(module, name, killing)
    from linkage.cli import app

    sys.argv = ["linkage", *arguments]
    app()


if __name__ == "__main__":
    main()
