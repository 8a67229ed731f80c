"""Errors of a fitted controller's use after its search: its file, its space, the questions asked.

Callers map them to answers: the service's API to 409 (``SpaceMismatch``,
``IncompatibleController``: the request is well formed but does not fit this controller) or
422 (``InvalidQuery``: a number out of range), the CLI to one line and exit status 2.
"""

from __future__ import annotations

from nao_core.errors import NaoCoreError


class ControllerCheckpointError(NaoCoreError, ValueError):
    """A file is not a controller checkpoint, or names a space this installation lacks."""


class SpaceMismatch(NaoCoreError, ValueError):
    """An architecture (or a warm start) belongs to another search space than the controller's."""


class IncompatibleController(NaoCoreError, ValueError):
    """A warm start's controller has another shape (hidden sizes, MLP) than the run's config."""


class InvalidQuery(NaoCoreError, ValueError):
    """A query's number (n, steps, k) is out of its range, or it names no architecture."""
