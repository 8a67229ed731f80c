"""What ``nao`` shows while it works: a progress bar on a terminal (a fake one here: a text
stream that says it is a TTY, handed to tqdm as its file), log lines elsewhere."""

from __future__ import annotations

import io
import sys

import pytest

from nao_core.console import BarCallback, Console
from nao_core.engine.callbacks import LoggingCallback, NullCallback


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def bar_of(console: Console) -> BarCallback:
    assert console.bars
    return BarCallback(console.file)


def test_a_train_phase_is_a_bar_of_epochs_with_the_metrics() -> None:
    term = FakeTerminal()
    with Console(0, term).progress() as callback:
        assert isinstance(callback, BarCallback)
        callback.on_phase("train", 3)
        for epoch in (1, 2, 3):
            callback.on_epoch_end(epoch, {"train_loss": 0.5, "eval_acc": 0.25})
        assert callback.bar is not None
        line = str(callback.bar)  # what it draws (tqdm redraws at most every 0.1 s)
        assert line.startswith("train: 100%|")
        assert "3/3" in line
        assert "train_loss=0.5 eval_acc=0.25" in line
    assert term.getvalue().startswith("\rtrain:")  # drawn in place
    assert callback.bar is None  # closed when the run returned


def test_trainings_inside_a_phase_of_candidates_are_its_items() -> None:
    term = FakeTerminal()
    callback = BarCallback(term)
    callback.on_phase("candidates", 2)
    for _ in range(2):
        callback.on_phase("train", 1)
        callback.on_epoch_end(1, {"loss": 1.0})
    callback.close()
    text = term.getvalue()
    assert "candidates 1/2 train" in text
    assert "candidates 2/2 train" in text


def test_the_supernet_bar_goes_on_after_a_pool_round() -> None:
    callback = BarCallback(FakeTerminal())
    callback.on_phase("supernet", 4)
    callback.on_phase("score", 8)  # the search scores before epoch 1 is reported
    callback.on_epoch_end(1, {"loss": 2.0})
    assert callback.bar is not None
    assert callback.bar.n == 0  # the score bar does not count epochs
    callback.on_phase("controller", 3)
    callback.on_phase("supernet", 4)
    assert callback.bar.n == 1
    callback.on_epoch_end(2, {"loss": 1.5})
    assert callback.bar.n == 2
    callback.close()


def test_quiet_or_not_a_terminal_draws_no_bar() -> None:
    with Console(0, io.StringIO()).progress() as callback:
        assert type(callback) is LoggingCallback  # plain lines
    with Console(-1, FakeTerminal()).progress() as callback:
        assert type(callback) is NullCallback
    assert not Console(-1, FakeTerminal()).bars


def test_eval_and_bench_show_the_time_and_print_above_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    term, stdout = FakeTerminal(), FakeTerminal()
    monkeypatch.setattr(sys, "stdout", stdout)
    with Console(0, term).running("nao bench rnn"):
        sys.stdout.write("a result")
        sys.stdout.write(" line\n")
    assert stdout.getvalue() == "a result line\n"
    assert "nao bench rnn [00:00]" in term.getvalue()
