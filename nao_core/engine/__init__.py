"""The training engine: one loop for every model (supernet, final CNN, later RNN LMs).

What differs between models lives in a ``Task`` (loss and metrics, ``tasks.py``) and a data
module (batches, ``data.py``); progress and cancellation go through a ``Callback``
(``callbacks.py``); ``checkpoint.py`` writes atomic, self-describing checkpoints; on CUDA,
``graphs.py`` replays training steps from CUDA graphs.
"""

from nao_core.engine.callbacks import Callback, LoggingCallback, NullCallback, Phase
from nao_core.engine.checkpoint import load_checkpoint, save_checkpoint, write_json
from nao_core.engine.data import DataModule, ImageDataModule
from nao_core.engine.graphs import GraphedSteps, graphed_steps
from nao_core.engine.loop import evaluate, fit, train_epoch
from nao_core.engine.metrics import MetricSums, correct_count, perplexity
from nao_core.engine.optim import build_sgd
from nao_core.engine.tasks import ClassificationTask, Task

__all__ = [
    "Callback",
    "ClassificationTask",
    "DataModule",
    "GraphedSteps",
    "ImageDataModule",
    "LoggingCallback",
    "MetricSums",
    "NullCallback",
    "Phase",
    "Task",
    "build_sgd",
    "correct_count",
    "evaluate",
    "fit",
    "graphed_steps",
    "load_checkpoint",
    "perplexity",
    "save_checkpoint",
    "train_epoch",
    "write_json",
]
