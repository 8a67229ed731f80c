"""Named configurations. Each names the recipe of nao-spec.md it follows.

* ``controller/paper`` — NAO_V1's controller (nao-spec §2.1, §3): 1000 epochs, batch 100,
  Adam 1e-3, lambda 0.8, 300 new archs from the top 100 with eta = 1..51.
* ``nao/nb201-paper`` — NAO over NAS-Bench-201 as first published here, for a query budget of
  50-150 architectures. The controller is the paper's; what changes is the scale of a round
  (the paper's 600 seeds and 300 new per round do not fit a 150-query budget) and two choices
  the spec leaves open that matter at this scale: rank-normalised targets (the table's
  disconnected cells at 10 % would squash min-max targets) and taking the decoded candidates
  in order of predicted score.
* ``nao/nb201`` — the tabular default (the API's ``"method": "nao"`` with no preset, ``nao
  bench nb201 --methods nao``), chosen on seeds 0-39 of all three NAS-Bench-201 tasks
  (docs/benchmarks.md): ``nb201-paper`` with SemiNAS's pseudo-labels made cheap. Rounds of 10
  new architectures (14 rounds to 150 queries instead of 28), 30 warm-started controller
  epochs per round instead of 200 (the controller is kept across rounds, so it only has to
  take in the round's new architectures), then 300 pseudo-labelled cells for 10 epochs. One
  model replica: the bench and the tabular worker fit on one thread, where splitting a batch
  only adds passes.
* ``nao/nb201-seminas`` — ``nao/nb201-paper`` plus SemiNAS's pseudo-labels (Luo et al. 2020,
  not in nao-spec): each round 500 random unseen cells labelled by the predictor, 40 more
  epochs on real and pseudo labels together (``nao_core.controller.semi``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nao_core.config import ControllerConfig, EvolutionConfig, NaoConfig
from nao_core.errors import UnknownName

_NB201_NAO_PAPER = NaoConfig(
    initial_pool=10,
    controller=ControllerConfig(
        epochs=200,
        top_seeds=10,
        new_archs=5,
        target_transform="rank",
        proposal_order="predicted",
    ),
)

_NB201_NAO = NaoConfig(
    initial_pool=10,
    controller=ControllerConfig(
        epochs=30,
        top_seeds=10,
        new_archs=10,
        target_transform="rank",
        proposal_order="predicted",
        pseudo_labels=300,
        pseudo_epochs=10,
        replicas=1,
    ),
)

PRESETS: dict[str, Any] = {
    "controller/paper": ControllerConfig(),
    "nao/paper": NaoConfig(),
    "nao/nb201": _NB201_NAO,
    "nao/nb201-paper": _NB201_NAO_PAPER,
    "nao/nb201-seminas": replace(
        _NB201_NAO_PAPER,
        controller=replace(_NB201_NAO_PAPER.controller, pseudo_labels=500, pseudo_epochs=40),
    ),
    "evolution/nb201": EvolutionConfig(population_size=20, sample_size=5),
}


def list_presets() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str) -> Any:
    if name not in PRESETS:
        raise UnknownName("preset", name, list_presets())
    return PRESETS[name]


# --- NAO-WS search and final training -----------------------------------------------------------
# ``nao search --preset NAME`` reads ``search/NAME``, ``nao train --preset NAME`` ``train/NAME``.
# * paper: nao-spec §4.1 (search) and §6.1 (final training, N=6 C=36, 600 epochs, cutout 16),
#   fp32 on every device; every arch scored on 4 fixed valid batches of 500 (§9).
# * small: a real but reduced run that fits 30-60 min on 2 CPU cores with the 20k CIFAR-10
#   subset of shared/data (written as the official batches; about 35-45 min on one busy
#   core, extrapolated from measured rates): a 5-cell C=8 supernet on 10,000 training images
#   per epoch, 40 epochs, a 100-arch pool scored on 1,000 valid images every 10 epochs (3
#   controller rounds of 50 new archs), top-3 rerank for 3 epochs. Final training: N=1 C=16,
#   10 epochs on 20,000 images (about 35 min on one busy core).
#   On ``digits`` train/small stays at chance (0.09): its cutout 16 blanks the whole 8x8
#   image; with ``--set data.cutout=0`` it reaches 0.92-0.97 in about 30 s of one thread.
# * tiny: seconds, for tests and the README walk-through, on ``digits`` (8x8, ships with
#   scikit-learn). Search: 256 training images, a C=4 supernet, a pool of 8, a small controller:
#   about 2 s of one thread (7 s per ``nao search`` with the process start). Its 1-epoch rerank
#   stays near chance, so its pick is cheap, not informed. Final training: C=8 on all 1,500
#   training images, batch 32, 4 epochs (188 SGD steps) at lr 0.05, no drop path, no dropout:
#   0.94-0.99 test accuracy (297 images) over 5 archs x 3 seeds, 7-19 s of one thread on a
#   busy 2-core machine (11-26 s per ``nao train``). The former recipe (256 images, batch 64,
#   3 epochs = 12 steps at lr 0.025, C=4, drop path 0.9) never left its initialisation: 0.118.

from nao_core.config import (  # noqa: E402  (appended section; keeps the file additive)
    DataConfig,
    NetworkConfig,
    OptimConfig,
    RerankConfig,
    SearchConfig,
    TrainConfig,
)

_TINY_CONTROLLER = ControllerConfig(
    hidden_size=16,
    mlp_layers=1,
    mlp_hidden_size=16,
    epochs=5,
    batch_size=8,
    top_seeds=4,
    new_archs=4,
    max_step_size=5,
)
_TINY_NET = NetworkConfig(layers=1, channels=4, drop_path_keep_prob=0.9)
# Final training has to learn in a few hundred steps: each step matters more than
# regularisation, and on 8x8 images C=8 costs barely more than C=4 (34 vs 31 ms a step of 32).
_TINY_TRAIN_NET = NetworkConfig(layers=1, channels=8, keep_prob=1.0, drop_path_keep_prob=1.0)

PRESETS.update(
    {
        # 4 fixed valid batches per score (nao-spec §9) and fp32 on CUDA as well (the authors')
        "search/paper": SearchConfig(score_batches=4, precision="fp32"),
        "search/small": SearchConfig(
            data=DataConfig(train_limit=10_000, batch_size=64),
            supernet=NetworkConfig(layers=1, channels=8),
            optim=OptimConfig(epochs=40),
            controller=ControllerConfig(epochs=200, top_seeds=30, new_archs=50),
            rerank=RerankConfig(
                top_k=3,
                model=NetworkConfig(
                    layers=1, channels=8, keep_prob=0.8, drop_path_keep_prob=0.9, use_aux_head=True
                ),
                optim=OptimConfig(epochs=3),
            ),
            pool_size=100,
            eval_every=10,
            score_batches=2,
        ),
        "search/tiny": SearchConfig(
            data=DataConfig(dataset="digits", train_limit=256, eval_batch_size=100),
            supernet=_TINY_NET,
            optim=OptimConfig(epochs=4),
            controller=_TINY_CONTROLLER,
            rerank=RerankConfig(top_k=2, model=_TINY_NET, optim=OptimConfig(epochs=1)),
            pool_size=8,
            eval_every=2,
        ),
        "train/paper": TrainConfig(precision="fp32"),  # fp32 as the authors; bf16 one override away
        "train/small": TrainConfig(
            data=DataConfig(
                train_portion=1.0, train_limit=20_000, batch_size=128, cutout=16, eval_split="test"
            ),
            model=NetworkConfig(
                layers=1, channels=16, keep_prob=0.8, drop_path_keep_prob=0.9, use_aux_head=True
            ),
            optim=OptimConfig(epochs=10, lr_min=0.0),
        ),
        "train/tiny": TrainConfig(
            # train_limit: all of digits' 1,500; it keeps ``tiny`` small on CIFAR too.
            data=DataConfig(
                dataset="digits",
                train_portion=1.0,
                train_limit=1_500,
                batch_size=32,
                eval_split="test",
            ),
            model=_TINY_TRAIN_NET,
            optim=OptimConfig(epochs=4, lr_max=0.05, lr_min=0.0),
        ),
    }
)

# --- NAO without weight sharing (issue #6) ------------------------------------------------------
# ``nao search --method nao --preset NAME`` reads ``nao-search/NAME``.
# * paper: nao-spec §5.1 — the 11-op space, 1000 initial candidates of N=3 F=32 trained 25
#   epochs each, TF NAO EPD, 3 controller rounds of ~300 new archs (eta = 10, 20, 30).
# * small: CIFAR-10 (the 20k subset of shared/data), 40 initial + 2 rounds of 20 candidates of
#   N=1 C=8 trained 2 epochs on 5,000 images: a throughput benchmark that fits minutes per worker.
# * tiny: digits, 6 initial + 2 rounds of up to 3 candidates trained 1 epoch: seconds.
from dataclasses import replace  # noqa: E402

from nao_core.config import NaoSearchConfig  # noqa: E402

PRESETS.update(
    {
        "nao-search/paper": NaoSearchConfig(
            candidate=replace(NaoSearchConfig().candidate, precision="fp32")
        ),
        "nao-search/small": NaoSearchConfig(
            space="cnn",
            candidate=TrainConfig(
                data=DataConfig(train_portion=0.9, train_limit=5_000, eval_split="valid"),
                model=NetworkConfig(layers=1, channels=8, keep_prob=1.0, drop_path_keep_prob=0.9),
                optim=OptimConfig(epochs=2, lr_max=0.024, lr_min=0.0205, weight_decay=5e-4),
            ),
            controller=ControllerConfig(
                mlp_layers=0,
                encoder_dropout=0.1,
                batch_size=50,
                epochs=200,
                top_seeds=20,
                new_archs=20,
            ),
            initial_pool=40,
            rounds=2,
        ),
        "nao-search/tiny": NaoSearchConfig(
            space="cnn",
            candidate=TrainConfig(
                data=DataConfig(
                    dataset="digits",
                    train_portion=0.9,
                    train_limit=256,
                    eval_batch_size=100,
                    eval_split="valid",
                ),
                model=_TINY_NET,
                optim=OptimConfig(epochs=1, lr_min=0.0),
            ),
            controller=replace(_TINY_CONTROLLER, new_archs=3),
            initial_pool=6,
            rounds=2,
            step_sizes=(1.0, 2.0, 3.0),
            top_k=3,
        ),
    }
)


# --- RNN (PTB / WikiText-2): ``search-rnn/NAME`` and ``train-rnn/NAME`` -----------------------
# * paper: nao-spec §4.4 (search: nhid 300, batch 256, SGD 0.25, 1000 epochs, eval every 200,
#   pool 1000) and §6.4 (final: nhid 850, batch 64, SGD 20 -> NT-ASGD, clip 0.25, 4000 epochs);
#   ``train-rnn/paper-wt2`` is the WikiText-2 recipe (nhid 700, dropouth 0.15, wd 5e-7, 2000).
# * small: a real but reduced PTB run for 2 CPU cores. Search: nhid 64, batch 64, the first
#   200k training tokens (89 windows per epoch), 30 epochs, a 100-arch pool scored on 2 windows
#   every 6 epochs (4 controller rounds of 50), top-3 rerank of 1 epoch. Measured on one
#   thread of this 2-core machine while other jobs ran: about 0.7 s per supernet window and
#   1 s per scored arch, so ~31 min of supernet training + ~8 min of scoring + a few minutes
#   of rerank. Final training: nhid 128 on the same 200k tokens, about 3 min per epoch, 6
#   epochs.
# * tiny: seconds, for tests; PTB cut to a few thousand tokens, nhid 16.

from nao_core.config import (  # noqa: E402  (appended section; keeps the file additive)
    CorpusConfig,
    RnnModelConfig,
    RnnOptimConfig,
    RnnRerankConfig,
    RnnSearchConfig,
    RnnTrainConfig,
)

_TINY_RNN = RnnModelConfig(nhid=16)
_TINY_CORPUS = CorpusConfig(train_limit=4_000, eval_limit=1_000, batch_size=16, eval_batch_size=10)
_SMALL_RNN_SEARCH = RnnSearchConfig(
    data=CorpusConfig(train_limit=200_000, eval_limit=20_000, batch_size=64, eval_batch_size=64),
    supernet=RnnModelConfig(nhid=64),
    # lr 20, clip 0.25 (the final LM's), not the paper's 0.25 / 10: 30 epochs of 200k tokens
    # at lr 0.25 leave the supernet at unigram level (valid ppl 900-1200 after 6 epochs, vs
    # 510-560 at lr 20), where the pool's ranking is a bias for sigmoid nodes, not quality.
    optim=RnnOptimConfig(epochs=30, lr=20.0, weight_decay=5e-7, grad_clip=0.25, asgd="off"),
    controller=ControllerConfig(
        mlp_layers=4,
        mlp_dropout=0.0,
        encoder_dropout=0.1,
        swap_augment=False,
        reset_optimizer=False,
        epochs=200,
        top_seeds=30,
        new_archs=50,
        max_step_size=29,
    ),
    rerank=RnnRerankConfig(
        top_k=3,
        batch_size=64,
        model=RnnModelConfig(nhid=64),
        optim=RnnOptimConfig(epochs=1, weight_decay=5e-7, asgd="off"),
    ),
    pool_size=100,
    eval_every=6,
    score_batches=2,
)

PRESETS.update(
    {
        "search-rnn/paper": RnnSearchConfig(score_batches=4),
        "search-rnn/small": _SMALL_RNN_SEARCH,
        "search-rnn/tiny": RnnSearchConfig(
            data=_TINY_CORPUS,
            supernet=_TINY_RNN,
            optim=RnnOptimConfig(epochs=4, lr=0.25, weight_decay=5e-7, grad_clip=10.0, asgd="off"),
            controller=_TINY_CONTROLLER,
            rerank=RnnRerankConfig(
                top_k=2,
                batch_size=16,
                model=_TINY_RNN,
                optim=RnnOptimConfig(epochs=1, weight_decay=5e-7, asgd="off"),
            ),
            pool_size=8,
            eval_every=2,
        ),
        "train-rnn/paper": RnnTrainConfig(),
        "train-rnn/paper-wt2": RnnTrainConfig(
            data=CorpusConfig(dataset="wikitext2"),
            model=RnnModelConfig(nhid=700, dropouth=0.15),
            optim=RnnOptimConfig(epochs=2000, weight_decay=5e-7),
        ),
        "train-rnn/small": RnnTrainConfig(
            data=CorpusConfig(train_limit=200_000, eval_limit=20_000, eval_batch_size=10),
            model=RnnModelConfig(nhid=128),
            optim=RnnOptimConfig(epochs=6),
        ),
        "train-rnn/tiny": RnnTrainConfig(
            data=_TINY_CORPUS, model=_TINY_RNN, optim=RnnOptimConfig(epochs=3)
        ),
    }
)

# Preset families per space: nao search/train --space S --preset NAME read "<family>/NAME".
_SEARCH_FAMILY = {"cnn": "search", "cnn-large": "search", "rnn": "search-rnn"}
_TRAIN_FAMILY = {"cnn": "train", "cnn-large": "train", "rnn": "train-rnn"}


def _family_preset(families: dict[str, str], what: str, space: str, name: str) -> Any:
    if space not in families:
        raise UnknownName(f"space with {what} presets", space, sorted(families))
    if "/" in name:  # a full preset name: it must be of the space's family
        family = name.split("/", 1)[0]
        if family != families[space]:
            raise UnknownName(f"{space} {what} preset", name, _names(families[space]))
        return get_preset(name)
    key = f"{families[space]}/{name}"
    if key not in PRESETS:
        raise UnknownName(f"{space} {what} preset", name, _names(families[space]))
    return PRESETS[key]


def _names(family: str) -> list[str]:
    return [p.split("/", 1)[1] for p in list_presets() if p.startswith(f"{family}/")]


def search_preset(space: str, name: str) -> Any:
    """The NAO-WS search config named ``name`` (paper, small, tiny) for ``space``.

    Raises:
        UnknownName: If the space has no weight-sharing search or no such preset.
    """
    return _family_preset(_SEARCH_FAMILY, "search", space, name)


def train_preset(space: str, name: str, dataset: str | None = None) -> Any:
    """The final-training config named ``name`` for ``space``; with ``dataset="wikitext2"``
    an RNN preset ``NAME-wt2`` (the WikiText-2 recipe) is preferred when there is one.

    Raises:
        UnknownName: If the space has no final training or no such preset.
    """
    if space == "rnn" and dataset == "wikitext2" and f"train-rnn/{name}-wt2" in PRESETS:
        name = f"{name}-wt2"
    return _family_preset(_TRAIN_FAMILY, "train", space, name)


# --- NAO without weight sharing on the RNN space (issue #6, nao-spec §5.2) ----------------------
# ``nao search --method nao --space rnn --preset NAME`` reads ``nao-search-rnn/NAME``.
# * paper: every candidate trained like the final LM (nhid 850, SGD lr 20 then NT-ASGD,
#   ``candidate.optim.asgd``) for 600 epochs, scored by its best valid perplexity; ~1500
#   initial cells, the TF NAO RNN EPD (3x200 MLP, dropouts 0.1, batch 50, one token per
#   encoder step), top 100 moved by eta = 10, 20, 30.
# * small / tiny: the train-rnn presets' corpora and widths, 1-2 epochs per candidate.
# The TF NAO RNN EPD reads one token per encoder step (22/22/22, embedding 96: token_group=1).
_NAO_RNN_CONTROLLER = ControllerConfig(
    encoder_dropout=0.1, mlp_dropout=0.1, batch_size=50, token_group=1, swap_augment=False
)

PRESETS.update(
    {
        "nao-search-rnn/paper": NaoSearchConfig(
            space="rnn",
            # the final LM's training, NT-ASGD included (nao-spec §5.2, §6.4)
            candidate=RnnTrainConfig(optim=RnnOptimConfig(epochs=600, asgd="nt")),
            controller=_NAO_RNN_CONTROLLER,
            initial_pool=1500,
        ),
        "nao-search-rnn/small": NaoSearchConfig(
            space="rnn",
            candidate=replace(
                PRESETS["train-rnn/small"], optim=RnnOptimConfig(epochs=2, asgd="off")
            ),
            controller=replace(_NAO_RNN_CONTROLLER, epochs=200, top_seeds=20, new_archs=20),
            initial_pool=40,
            rounds=2,
        ),
        "nao-search-rnn/tiny": NaoSearchConfig(
            space="rnn",
            candidate=RnnTrainConfig(
                data=_TINY_CORPUS, model=_TINY_RNN, optim=RnnOptimConfig(epochs=1, asgd="off")
            ),
            controller=replace(_TINY_CONTROLLER, new_archs=3),
            initial_pool=6,
            rounds=2,
            step_sizes=(1.0, 2.0, 3.0),
            top_k=3,
        ),
    }
)
