"""Published architectures by name (nao-spec §6.5), as the authors' plain-integer strings.

* ``nao-ws-cnn`` — NAO-WS best, TF ``NAO-WS/cnn/train_final.sh`` (small space).
* ``naonet-a`` — NAONet-A, NAO without weight sharing, PT ``NAO_V1/train_NAONet_A_*.sh``
  (``cnn-large``, V1 op ids 5-15). We take the PT string, not the TF JSON, whose reduction
  node h4 has its inputs swapped (spec §8 item 19, §9 open question 4): PT produced the
  2.48 % / 1.93 % CIFAR-10 numbers we compare against.
* ``naonet-b`` — NAONet-B, PT NAO-WS ``NAO_V1/train_NAONet_B_36_cifar10.sh`` (small space).
* ``naonet-v2`` — NAONet-V2, ``NAO_V2/train_NAONet_V2_*.sh`` (small space).
* ``nao-ws-rnn`` — NAO-WS best PTB cell, ``NAO-WS/rnn/train_final.sh`` (spec §6.4), written in
  the NAO-WS activation mapping (0 tanh, 1 relu, 2 sigmoid, 3 identity) that the "rnn" space
  uses: s1=relu(s0), s2=relu(s1), s3=sigmoid(s2), ..., s11=relu(s4).
* ``nao-rnn`` — NAO best PTB / WikiText-2 cell, ``NAO/rnn/train_ptb_final.sh``, published in
  the NAO/rnn mapping (2 identity, 3 sigmoid) and converted on load (``from_nao_mapping``):
  its last node s11=identity(s1) is id 2 there, id 3 in our space (spec §8.16).
"""

from __future__ import annotations

from nao_core.errors import UnknownName
from nao_core.search_space import create_search_space
from nao_core.search_space.base import Arch
from nao_core.search_space.rnn import RnnSpace

_NAMED: dict[str, tuple[str, str]] = {
    "nao-ws-cnn": (
        "cnn",
        "0 1 0 4 2 2 1 3 1 0 2 0 2 3 1 3 1 2 0 4  1 1 0 3 2 3 2 3 1 0 0 1 0 4 2 4 2 3 2 3",
    ),
    "naonet-a": (
        "cnn-large",
        "0 7 1 15 2 8 1 7 0 6 1 7 0 8 4 7 1 5 0 7  0 7 1 13 0 6 0 14 0 9 1 10 0 14 2 6 1 11 0 7",
    ),
    "naonet-b": (
        "cnn",
        "0 1 0 2 0 1 2 2 1 3 0 2 4 0 1 3 2 1 0 3  1 1 1 0 2 1 2 4 1 0 2 3 3 1 2 2 0 2 0 2",
    ),
    "naonet-v2": (
        "cnn",
        "1 1 0 1 2 4 0 0 0 0 2 1 0 0 0 2 0 3 0 0  0 2 0 2 2 2 1 0 0 0 0 1 0 0 0 3 0 0 0 1",
    ),
    "nao-ws-rnn": ("rnn", "0 1 1 1 2 2 1 2 4 1 4 1 4 1 7 1 8 2 1 0 4 1"),
    "nao-rnn": ("rnn", "0 1 0 1 1 1 3 0 4 1 4 1 5 1 1 1 7 1 1 1 1 2"),
}
_NAO_RNN_MAPPING = {"nao-rnn"}  # published with NAO/rnn activation ids


def list_named_archs() -> list[str]:
    return sorted(_NAMED)


def get_named_arch(name: str) -> tuple[str, Arch]:
    """The space name and the architecture published as ``name``.

    Raises:
        UnknownName: If no architecture has that name.
    """
    if name not in _NAMED:
        raise UnknownName("named architecture", name, list_named_archs())
    space_name, ints = _NAMED[name]
    space = create_search_space(space_name)
    if name in _NAO_RNN_MAPPING:
        assert isinstance(space, RnnSpace)
        return space_name, space.from_nao_mapping([int(v) for v in ints.split()])
    arch: Arch = space.parse(ints)
    return space_name, arch
