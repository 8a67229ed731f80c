"""Weight-sharing evaluators: a supernet that trains on a pool and scores architectures.

``SupernetEvaluator`` is the seam the NAO-WS search loop (``nao_core.search.ws``) talks to;
``CnnSupernetEvaluator`` implements it for the "cnn" space with NAO_V1's recipe
(nao-spec §4.1):

* training: SGD momentum 0.9, weight decay 3e-4, cosine 0.025 -> 0.001 over all epochs,
  grad clip 5, drop path over the total step count, one architecture sampled per batch by
  the search (``sample``), through the engine's one loop;
* scoring: every architecture on the *same* fixed validation batches with batch-statistics
  BN (spec §8 item 8, §9), accuracy summed on the device and read once for the whole pool;
* rerank: a stand-alone ``CnnNetwork`` trained briefly from scratch (spec §4.1 "Final
  selection"), evaluated on the whole valid split. Each candidate's training is seeded from
  the search seed and its rank only, so a resumed search reranks exactly as an uninterrupted
  one would.

Precision and layout on CUDA: fp32 and NCHW by default (``precision="auto"``), not the bf16 +
channels_last of the stand-alone networks. At the paper's sizes (batch 64, 20 channels) a
supernet step is about 4,600 tiny kernels, and on an H200 eager PyTorch spends 4–6 times longer
launching them than the GPU spends running them; bf16 autocast and channels_last only add cast
and layout kernels. Measured there with ``nao bench supernet`` (README, issue #3): supernet
training 853 img/s in fp32 NCHW against 405 in bf16 channels_last, rerank 1,064 against 815,
scoring 17,294 against 18,778. On a CPU, channels_last stays (oneDNN: 2–3× faster).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from nao_core.config import RnnSearchConfig, SearchConfig
from nao_core.data import ImageDataset
from nao_core.data.corpus import Corpus
from nao_core.engine import (
    ClassificationTask,
    GraphedSteps,
    ImageDataModule,
    correct_count,
    evaluate,
    fit,
    graphed_steps,
)
from nao_core.engine.callbacks import Callback
from nao_core.engine.loop import EpochEnd
from nao_core.engine.optim import build_sgd
from nao_core.errors import InvalidConfig
from nao_core.search_space import create_search_space
from nao_core.search_space.base import Arch, SearchSpace
from nao_core.supernet import CnnSupernet
from nao_core.train import build_network, image_data, model_args
from nao_core.utils.device import Resolved, autocast, resolve_precision, to_channels_last

RERANK_SEED_OFFSET = 1_000_003  # keeps rerank seeds apart from the search's own streams


SEARCH_CUDA_PRECISION: Resolved = "fp32"  # what precision="auto" means on CUDA (docstring)


def search_channels_last(device: torch.device) -> bool:
    """The search's default layout: channels_last on a CPU (oneDNN), NCHW on CUDA."""
    return device.type == "cpu"


class SupernetEvaluator(Protocol):
    space: SearchSpace

    def train(
        self,
        *,
        start_epoch: int,
        sample: Callable[[], Arch],
        callback: Callback,
        epoch_end: EpochEnd,
    ) -> None:
        """Train from ``start_epoch`` to the configured epochs, one ``sample()`` per batch."""
        ...

    def score(self, archs: Sequence[Arch]) -> list[float]:
        """One-shot score of every arch (higher is better), all on the same data."""
        ...

    def rerank(self, arch: Arch, rank: int) -> float:
        """Score of ``arch`` after short stand-alone training (``rank`` seeds it)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class CnnSupernetEvaluator:
    """NAO_V1's ``NASWSNetworkCIFAR`` training and scoring, on a device-resident dataset."""

    def __init__(
        self,
        cfg: SearchConfig,
        dataset: ImageDataset,
        device: torch.device,
        *,
        channels_last: bool | None = None,
    ) -> None:
        """``channels_last``: None = the device's default; the benchmark sets it."""
        if cfg.space != "cnn":
            raise InvalidConfig(
                f"space: the weight-sharing CNN search covers the 'cnn' space, got {cfg.space!r}"
            )
        self.cfg, self.device, self.dataset = cfg, device, dataset
        self.space = create_search_space("cnn")
        self.precision = resolve_precision(cfg.precision, device, SEARCH_CUDA_PRECISION)
        cl = search_channels_last(device) if channels_last is None else channels_last
        self.data = image_data(dataset, device, cfg.data.cutout, channels_last=cl)
        self.module = ImageDataModule(self.data, cfg.data.batch_size, eval_split=None)
        net = cfg.supernet
        self.supernet = CnnSupernet(
            layers=net.layers,
            channels=net.channels,
            num_classes=dataset.num_classes,
            in_channels=dataset.in_channels,
            image_size=dataset.image_size,
            keep_prob=net.keep_prob,
            drop_path_keep_prob=net.drop_path_keep_prob,
            use_aux_head=net.use_aux_head,
            device=device,
        )
        if cl:
            to_channels_last(self.supernet)
        self.optimizer, self.scheduler = build_sgd(self.supernet.parameters(), cfg.optim)
        self.generator = torch.Generator(device).manual_seed(cfg.seed)
        self.task = ClassificationTask(cfg.optim.aux_weight)
        self.graphs: GraphedSteps | None = None  # built at the first train() on CUDA
        # First images of the valid split, which is itself a seeded random permutation.
        self.score_batches = self.data.fixed_batches(
            "valid", cfg.data.eval_batch_size, cfg.score_batches
        )
        if not self.score_batches:
            raise InvalidConfig("data: the valid split is empty; lower data.train_portion")

    def train(
        self,
        *,
        start_epoch: int,
        sample: Callable[[], Arch],
        callback: Callback,
        epoch_end: EpochEnd,
    ) -> None:
        def forward(model: nn.Module, x: Tensor, progress: float | Tensor, arch: Arch) -> Any:
            return model(x, arch, False, progress=progress)

        if self.graphs is None:
            self.graphs = graphed_steps(
                self.supernet,
                self.task,
                self.optimizer,
                enabled=self.cfg.cuda_graphs,
                grad_clip=self.cfg.optim.grad_clip,
                precision=self.precision,
                max_graphs=self.cfg.cuda_graph_cache,
            )
        fit(
            self.supernet,
            self.task,
            self.module,
            self.optimizer,
            self.scheduler,
            epochs=self.cfg.optim.epochs,
            start_epoch=start_epoch,
            generator=self.generator,
            grad_clip=self.cfg.optim.grad_clip,
            precision=self.precision,
            forward=forward,
            callback=callback,
            epoch_end=epoch_end,
            draw=sample,
            graphs=self.graphs,
        )

    @torch.no_grad()
    def score(self, archs: Sequence[Arch]) -> list[float]:
        self.supernet.eval()
        correct = torch.zeros(len(archs), device=self.device)
        total = sum(int(y.shape[0]) for _, y in self.score_batches)
        for i, arch in enumerate(archs):
            for x, y in self.score_batches:
                with autocast(self.device, self.precision):
                    logits, _ = self.supernet(x, arch, True)
                correct[i] += correct_count(logits, y)  # stays on the device: no sync per arch
        return [c / total for c in correct.tolist()]

    def rerank(self, arch: Arch, rank: int) -> float:
        rcfg = self.cfg.rerank
        seed = self.cfg.seed + RERANK_SEED_OFFSET + rank
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            args = model_args(rcfg.model, self.dataset)
            model = build_network(arch, "cnn", args, self.device, self.data.channels_last)
            optimizer, scheduler = build_sgd(model.parameters(), rcfg.optim)
            module = ImageDataModule(
                self.data, rcfg.batch_size, self.cfg.data.eval_batch_size, eval_split="valid"
            )
            task = ClassificationTask(rcfg.optim.aux_weight)
            graphs = graphed_steps(
                model,
                task,
                optimizer,
                enabled=self.cfg.cuda_graphs,
                grad_clip=rcfg.optim.grad_clip,
                precision=self.precision,
            )
            metrics = fit(
                model,
                task,
                module,
                optimizer,
                scheduler,
                epochs=rcfg.optim.epochs,
                generator=torch.Generator(self.device).manual_seed(seed),
                grad_clip=rcfg.optim.grad_clip,
                precision=self.precision,
                eval_every=max(rcfg.optim.epochs, 1),  # the valid split once, at the end
                graphs=graphs,
            )
            if "eval_acc" in metrics:
                return metrics["eval_acc"]
            batches = module.eval_batches()
            assert batches is not None  # __init__ checked the valid split
            return evaluate(model, task, batches, precision=self.precision)["acc"]

    def state_dict(self) -> dict[str, Any]:
        return {
            "supernet": self.supernet.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.supernet.load_state_dict(state["supernet"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.graphs = None  # captured against the optimizer's old momentum buffers
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])


def create_supernet_evaluator(
    cfg: SearchConfig | RnnSearchConfig, dataset: ImageDataset | Corpus, device: torch.device
) -> SupernetEvaluator:
    """The weight-sharing evaluator of ``cfg.space``: "cnn" on images, "rnn" on a corpus."""
    if isinstance(cfg, RnnSearchConfig):
        from nao_core.evaluator.rnn import RnnSupernetEvaluator

        if not isinstance(dataset, Corpus):
            raise InvalidConfig("data: an RNN search needs a corpus (ptb or wikitext2)")
        return RnnSupernetEvaluator(cfg, dataset, device)
    if not isinstance(dataset, ImageDataset):
        raise InvalidConfig("data: a CNN search needs an image dataset")
    return CnnSupernetEvaluator(cfg, dataset, device)
