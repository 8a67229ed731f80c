"""Pseudo-labels (SemiNAS): unseen archs drawn, the decoder learns them, off means off."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from nao_core.config import ControllerConfig
from nao_core.controller import Controller, fit_controller, fit_with_pseudo_labels
from nao_core.errors import InvalidConfig
from nao_core.search_space import create_search_space

SPACE = create_search_space("nb201")


def _labelled(n: int, seed: int) -> tuple[list, torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    archs = SPACE.sample_many(rng, n)
    tokens = torch.tensor([SPACE.encode(a) for a in archs], dtype=torch.long)
    weights = rng.normal(size=(SPACE.length, SPACE.vocab_size))
    scores = weights[np.arange(SPACE.length), tokens.numpy()].sum(axis=1)
    return archs, tokens, scores


def _controller(cfg: ControllerConfig) -> Controller:
    torch.manual_seed(0)
    return Controller(SPACE, cfg)


def test_sample_unseen_draws_distinct_archs_the_search_has_not_seen() -> None:
    archs, _, _ = _labelled(30, 0)
    known = {SPACE.canonical_key(a) for a in archs}
    drawn = SPACE.sample_unseen(np.random.default_rng(1), 200, known)
    keys = [SPACE.canonical_key(a) for a in drawn]
    assert len(drawn) == 200
    assert len(set(keys)) == 200
    assert not set(keys) & known


def test_sample_unseen_stops_when_the_space_runs_out() -> None:
    space = create_search_space("nb201")
    legal = [np.flatnonzero(row).tolist() for row in space.token_mask()]
    every = {space.canonical_key(space.decode(list(t))) for t in itertools.product(*legal)}
    assert len(every) == 15625
    assert space.sample_unseen(np.random.default_rng(0), 10, every) == []


def test_without_pseudo_labels_it_is_the_plain_fit() -> None:
    _, tokens, scores = _labelled(40, 0)
    cfg = ControllerConfig(epochs=5, replicas=1)
    a, b = _controller(cfg), _controller(cfg)
    torch.manual_seed(11)  # dropout of a one-replica fit draws from the global generator
    ra, _ = fit_controller(a, tokens, scores, generator=torch.Generator().manual_seed(3))
    rng = np.random.default_rng(5)
    torch.manual_seed(11)
    rb, _ = fit_with_pseudo_labels(
        b, SPACE, tokens, scores, known=set(), rng=rng, generator=torch.Generator().manual_seed(3)
    )
    assert ra.loss == rb.loss
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert rng.bit_generator.state == np.random.default_rng(5).bit_generator.state  # untouched


def test_pseudo_labels_teach_the_decoder_the_unlabelled_archs() -> None:
    """The point of SemiNAS here: after the pseudo-label fit the decoder reconstructs
    architectures it was never given a score for, which the plain fit cannot."""
    archs, tokens, scores = _labelled(30, 0)
    known = {SPACE.canonical_key(a) for a in archs}
    base = ControllerConfig(epochs=60, replicas=1)
    semi = ControllerConfig(epochs=60, replicas=1, pseudo_labels=300, pseudo_epochs=60)
    unlabelled = SPACE.sample_unseen(np.random.default_rng(9), 300, known)
    held = torch.tensor([SPACE.encode(a) for a in unlabelled[:100]], dtype=torch.long)

    plain = _controller(base)
    fit_controller(plain, tokens, scores, generator=torch.Generator().manual_seed(0))
    taught = _controller(semi)
    report, _ = fit_with_pseudo_labels(
        taught,
        SPACE,
        tokens,
        scores,
        known=known,
        rng=np.random.default_rng(9),  # draws exactly ``unlabelled``
        generator=torch.Generator().manual_seed(0),
    )

    def hamming(c: Controller) -> float:
        c.eval()
        return float((c.reconstruct(held) != held).sum(dim=1).float().mean())

    assert report.epochs == 60  # the first fit's report, on the evaluated archs
    assert hamming(taught) < 0.5 * hamming(plain)


def test_normalized_targets_must_lie_in_the_unit_interval() -> None:
    _, tokens, _ = _labelled(10, 0)
    c = _controller(ControllerConfig(epochs=1, replicas=1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_controller(
            c, tokens, np.linspace(0, 2, 10), generator=torch.Generator(), normalized=True
        )


@pytest.mark.parametrize(("field", "value"), [("pseudo_labels", -1), ("pseudo_epochs", 0)])
def test_config_names_the_bad_pseudo_label_field(field: str, value: int) -> None:
    with pytest.raises(InvalidConfig, match=f"controller.{field}"):
        ControllerConfig(**{field: value})
