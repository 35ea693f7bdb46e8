"""Where medtorch is running: a terminal, a Jupyter kernel, or neither (logs, CI).

The trainer asks :func:`show_progress` whether to draw its progress bar
(``trainer.progress``), and :meth:`medtorch.Run.show_report` asks :func:`in_notebook`
whether to display the report inline. The bar itself is ``tqdm.auto``: a widget in Jupyter
when ``ipywidgets`` is installed, a text bar otherwise.
"""

from __future__ import annotations

import sys
from typing import Literal


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell that is not a terminal).

    IPython is never imported here: it is asked only when the caller already runs in it.

    >>> in_notebook()  # a doctest runs in plain Python
    False
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"


def on_terminal() -> bool:
    """True when both stdout and stderr are interactive terminals."""
    return all(getattr(s, "isatty", lambda: False)() for s in (sys.stdout, sys.stderr))


def show_progress(setting: bool | Literal["auto"]) -> bool:
    """The ``trainer.progress`` decision: ``True`` always draws the bar, ``False`` never,
    ``"auto"`` on a terminal or in a notebook (not when the output goes to a log file).

    >>> show_progress(False), show_progress(True)
    (False, True)
    """
    if setting == "auto":
        return on_terminal() or in_notebook()
    return bool(setting)
