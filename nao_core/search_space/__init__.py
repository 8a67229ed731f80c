"""Search spaces, behind one interface (``SearchSpace``) and one registry."""

from __future__ import annotations

from collections.abc import Callable

from nao_core.errors import UnknownName
from nao_core.search_space.base import Arch, SearchSpace
from nao_core.search_space.cnn import CnnArch, CnnSpace, Node, cnn_large, cnn_small
from nao_core.search_space.nb201 import Nb201Arch, Nb201Space
from nao_core.search_space.rnn import RnnArch, RnnSpace

_SPACES: dict[str, Callable[[], SearchSpace]] = {
    "cnn": cnn_small,
    "cnn-large": cnn_large,
    "rnn": RnnSpace,
    "nb201": Nb201Space,
}
_CACHE: dict[str, SearchSpace] = {}


def list_search_spaces() -> list[str]:
    return sorted(_SPACES)


def create_search_space(name: str) -> SearchSpace:
    """The (stateless, shared) space registered under ``name``."""
    if name not in _SPACES:
        raise UnknownName("search space", name, list_search_spaces())
    if name not in _CACHE:
        _CACHE[name] = _SPACES[name]()
    return _CACHE[name]


__all__ = [
    "Arch",
    "CnnArch",
    "CnnSpace",
    "Nb201Arch",
    "Nb201Space",
    "Node",
    "RnnArch",
    "RnnSpace",
    "SearchSpace",
    "create_search_space",
    "list_search_spaces",
]
