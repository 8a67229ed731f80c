"""The inference networks an export is traced from: a trained model in eval mode, with only
what a user runs.

* ``ImageClassifier``: a ``CnnNetwork`` (aux head left out, no drop path, no dropout) mapping
  normalised images (B, C, H, W) to logits (B, classes), contiguous NCHW whatever layout it
  trained in.
* ``LanguageModelStep``: one time step of an ``RnnNetwork`` (B,) ids + (B, H) state ->
  (B, V) logits + (B, H) state, for tracing; ``LanguageModelWindow`` loops it over a window
  of any length in TorchScript, so the exported LM takes (T, B) ids like ``RnnNetwork``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nao_core.engine.checkpoint import load_checkpoint
from nao_core.errors import InvalidConfig
from nao_core.models import CnnNetwork, RnnNetwork
from nao_core.search_space import create_search_space
from nao_core.train import build_network
from nao_core.train_rnn import build_lm


class ImageClassifier(nn.Module):
    """Logits of a trained ``CnnNetwork``; the aux head is not built at all."""

    def __init__(self, net: CnnNetwork) -> None:
        super().__init__()
        self.net = net.eval()

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)[0]  # (B, classes)


class LanguageModelStep(nn.Module):
    """One step of the LM: the traced unit of ``LanguageModelWindow``."""

    def __init__(self, net: RnnNetwork) -> None:
        super().__init__()
        self.net = net.eval()

    def forward(self, tokens: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        logits, hidden, _ = self.net(tokens.unsqueeze(0), hidden)  # (1, B, V), (B, H)
        return logits[0], hidden


class LanguageModelWindow(nn.Module):
    """(T, B) ids and the (B, H) state carried from the previous window -> (T, B, V) logits
    and the new state. Scripted around the traced step, so T and B are free."""

    def __init__(self, step: nn.Module) -> None:
        super().__init__()
        self.step = step

    def forward(self, tokens: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        outs: list[Tensor] = []
        for t in range(tokens.size(0)):
            logits, hidden = self.step(tokens[t], hidden)
            outs.append(logits)
        return torch.stack(outs), hidden


def load_trained(path: str) -> tuple[nn.Module, dict[str, Any]]:
    """The model of a ``kind="model"`` checkpoint on the CPU in eval mode, contiguous NCHW
    for a CNN (what exporters and runtimes expect), and the checkpoint dict.

    Raises:
        MissingData: If the file is absent or not one of our checkpoints.
        InvalidConfig: If it is not a trained model (a search state, a controller...).
    """
    ckpt = load_checkpoint(path, "cpu")
    if ckpt.get("kind") != "model":
        raise InvalidConfig(
            f"checkpoint: {path} is a {ckpt.get('kind')!r} checkpoint, not a trained model "
            "(kind 'model', written by nao train)"
        )
    space = ckpt["space"]
    arch = create_search_space(space).parse(ckpt["arch"])
    dev = torch.device("cpu")
    state = ckpt["model"]
    if space == "rnn":
        model: nn.Module = build_lm(arch, ckpt["model_args"], dev)  # type: ignore[arg-type]
    else:  # inference never runs the aux head: neither built nor loaded
        args = {**ckpt["model_args"], "use_aux_head": False}
        model = build_network(arch, space, args, dev, channels_last=False)
        state = {k: v for k, v in state.items() if not k.startswith("aux_head.")}
    model.load_state_dict(state)
    return model.eval(), ckpt
