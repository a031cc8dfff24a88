"""Progress bars, the same everywhere: :mod:`tqdm.auto` (a widget in Jupyter, text in a
terminal) with ``disable=None``, so that a bar draws only on a terminal and never writes
``\\r`` frames into a redirected log or a captured stream.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(**kwargs: Any) -> Any:
    """A :class:`tqdm.auto.tqdm` bar on stderr, off when stderr is not a terminal.

    Parameters
    ----------
    **kwargs
        Passed to tqdm (``total``, ``desc``, ``unit``, ``leave``...); ``disable`` defaults
        to ``None`` (off unless stderr is a terminal) and ``file`` to ``sys.stderr``. Pass
        ``disable=False`` to force a bar.

    Returns
    -------
    tqdm.auto.tqdm
        The bar (use it as a context manager, or ``close()`` it).
    """
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", None)
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(**kwargs)
