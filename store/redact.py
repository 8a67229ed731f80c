"""What a caller sees of the server: paths in messages as their variables, workers by name.

Job rows are readable without a token, so what is stored in them must not show the host's
layout: ``redact_paths`` writes the storage, data and home directories as ``$NAO_STORAGE_DIR``,
``$NAO_DATA_DIR``, ``$NAO_HOME`` and ``~`` (the worker log keeps the full message). A job's
``worker`` column holds the process identity recovery needs (``NAME/HOST:PID``,
``worker.settings.worker_id``); ``worker_name`` is the part callers see.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from store.settings import Settings, get_settings


def _places(settings: Settings) -> list[tuple[str, str]]:
    named = [
        (settings.resolved_storage_dir(), "$NAO_STORAGE_DIR"),
        (settings.resolved_data_dir(), "$NAO_DATA_DIR"),
        (settings.home, "$NAO_HOME"),
        (Path.home(), "~"),
    ]
    pairs = set()
    for path, name in named:
        for spelling in (str(path), str(path.expanduser()), os.path.realpath(path.expanduser())):
            spelling = spelling.rstrip("/")
            if len(spelling) > 1:  # never "/" itself
                pairs.add((spelling, name))
    return sorted(pairs, key=lambda p: -len(p[0]))  # the deepest folder first


def redact_paths(text: str, settings: Settings | None = None) -> str:
    """``text`` with the server's storage, data and home directories as their variables."""
    for path, name in _places(settings or get_settings()):
        # a whole folder only: /srv/data is not the start of /srv/data2
        text = re.sub(re.escape(path) + r"(?![\w.-])", lambda _m, n=name: n, text)
    return text


def worker_name(identity: str | None) -> str | None:
    """The shown name of a worker identity: ``NAME`` of ``NAME/HOST:PID``; an older
    ``HOST:PID`` row shows ``HOST``."""
    if identity is None:
        return None
    if "/" in identity:
        return identity.split("/", 1)[0]
    return re.sub(r":\d+$", "", identity)
