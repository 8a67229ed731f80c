"""Architecture optimisation in embedding space (nao-spec §3).

For seed architectures with normalised encoder outputs e_t, move every e_t along the
predictor's gradient, e'_t = normalize(e_t + eta * df/de_t), re-pool emb' and decode greedily
from (emb', e'). All step sizes eta = 1..max_step_size+1 are stacked along the batch and
decoded in one pass; candidates are then taken in the authors' order (eta ascending, seeds
in rank order) or, with ``proposal_order="predicted"``, by the predictor's score of the decoded
architecture. Candidates are unique by canonical form and unseen in ``known``.

``controller.step_escalations`` (0 = the authors' cap) lets a round that runs dry before
``n_new`` continue with wider step ranges (each 4x the last, as many steps, spaced
geometrically) instead of leaving the rest to random sampling: once the predictor fits its
pool, the sigmoid saturates at the top seeds and eta <= 51 often decodes only known archs.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch

from nao_core.controller.model import Controller, pool_embedding, single_thread
from nao_core.search_space.base import Arch, SearchSpace


@dataclass(frozen=True)
class Proposal:
    arch: Arch
    parent: int  # index into the seed list
    step_size: float
    predicted: float  # predictor output for the decoded architecture


def move_embeddings(
    controller: Controller, seeds: torch.Tensor, step_sizes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Memory (S*B, T, H) and embedding (S*B, H) after one gradient step per step size.

    Row ``s * B + b`` is seed b moved by ``step_sizes[s]``.
    """
    controller.eval()
    with torch.no_grad():
        memory, _ = controller.encoder(seeds)  # (B, T, H)
    memory = memory.detach().requires_grad_(True)
    with torch.enable_grad():
        pred = controller.predictor(pool_embedding(memory))
        (grad,) = torch.autograd.grad(pred.sum(), memory)  # (B, T, H), equal over t
    with torch.no_grad():
        moved = memory.unsqueeze(0) + step_sizes.view(-1, 1, 1, 1) * grad.unsqueeze(0)
        moved = torch.nn.functional.normalize(moved.flatten(0, 1), dim=-1)
        return moved, pool_embedding(moved)


@torch.no_grad()
def _predict(controller: Controller, tokens: torch.Tensor) -> torch.Tensor:
    return controller.predict(tokens)


def improve(
    controller: Controller,
    space: SearchSpace,
    seeds: Sequence[Arch],
    n_new: int,
    known: Collection[str] = (),
    *,
    max_step_size: int | None = None,
    order: str | None = None,
    step_sizes: Sequence[float] | None = None,
) -> list[Proposal]:
    """Up to ``n_new`` new architectures reached from ``seeds`` by gradient steps.

    ``step_sizes`` replaces the default eta = 1..max_step_size+1 (NAO without weight sharing
    uses the fixed 10, 20, 30, nao-spec §5).
    """
    cfg = controller.cfg
    max_step = cfg.max_step_size if max_step_size is None else max_step_size
    order = order or cfg.proposal_order
    if n_new <= 0 or not seeds:
        return []
    seed_tokens = torch.tensor([space.encode(a) for a in seeds], dtype=torch.long)
    etas = (
        torch.arange(1, max_step + 2, dtype=torch.float32)
        if step_sizes is None
        else torch.tensor(list(step_sizes), dtype=torch.float32)
    )
    seen = set(known)
    decoded_rows: set[tuple[int, ...]] = set()  # many steps decode to the same sequence
    candidates: list[tuple[torch.Tensor, Arch, int, float]] = []  # (tokens, arch, parent, eta)
    B = len(seeds)
    for attempt in range(1 + (cfg.step_escalations if step_sizes is None else 0)):
        if attempt:  # the range ran dry: the next, 4x wider range, as many steps again
            top = float(etas[-1])
            etas = torch.logspace(math.log10(top * 1.05), math.log10(top * 4), len(etas))
        with single_thread():  # the same bits on any host (``controller.model``)
            memory, emb = move_embeddings(controller, seed_tokens, etas)
            with torch.no_grad():
                decoded = controller.decoder.greedy(memory, emb, controller.mask)  # (S*B, L)
        for row, toks in enumerate(decoded.tolist()):  # eta-major: the authors' order
            if tuple(toks) in decoded_rows:
                continue
            decoded_rows.add(tuple(toks))
            arch = space.decode(toks)
            key = space.canonical_key(arch)
            if key in seen:
                continue
            seen.add(key)
            candidates.append((decoded[row], arch, row % B, float(etas[row // B])))
            if order == "step" and len(candidates) >= n_new:
                break
        if len(candidates) >= n_new:
            break
    if not candidates:
        return []
    scores = _predict(controller, torch.stack([c[0] for c in candidates])).tolist()
    proposals = [
        Proposal(arch, parent, eta, score)
        for (_, arch, parent, eta), score in zip(candidates, scores, strict=True)
    ]
    if order == "predicted":
        proposals.sort(key=lambda p: -p.predicted)
    return proposals[:n_new]
