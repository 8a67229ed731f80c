"""What the ``nao`` command shows: its help, ``-v``/``-q``, log lines, progress bars.

``top_parser`` and ``finish_parser`` frame the one parser tree of ``nao``: every command listed
with its one-line help, ``-v``/``-q`` accepted before or after any subcommand, and the options
that commands share described once.

Long runs report through nao_core's ``Callback`` hooks (``engine/callbacks.py``); the training
loop knows nothing of what draws them. On a terminal, ``BarCallback`` draws them as one tqdm
bar on stderr (stdout carries the command's result); elsewhere ``LoggingCallback`` writes them
as plain log lines. ``eval`` and ``bench`` have no such hooks, so on a terminal they show an
elapsed-time line while they run. ``-q`` turns both off.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import textwrap
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # both imported when used: ``nao --help`` and ``nao up`` load no torch
    from tqdm import tqdm

    from nao_core.engine.callbacks import Callback
    from nao_core.search.pool import PoolEntry

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}

# Phase names (engine.callbacks.Phase, and nao_core.search.nows.CANDIDATES_PHASE) whose items
# are trainings: a train phase inside one is shown as its item.
_OUTER_PHASES = frozenset({"candidates", "rerank"})
_EPOCH_PHASES = frozenset({"supernet", "train"})  # the ones on_epoch_end counts
_UNITS = {"score": "arch", "rerank": "arch", "candidates": "arch"}


# Options that mean the same in every command that has them; a command that gives one no help
# of its own gets this one.
SHARED_HELP = {
    "--device": "auto (CUDA if present), cpu, cuda:0 ...",
    "--threads": "torch CPU threads (0: default)",
    "--space": "search space: cnn, cnn-large or rnn",
    "--dataset": "cifar10, cifar100, digits (cnn); ptb, wikitext2 (rnn)",
    "--set": "KEY=VALUE: override one config value; repeatable",
    "--search-set": "KEY=VALUE: override one value of the search config; repeatable",
    "--train-set": "KEY=VALUE: override one value of the training config; repeatable",
    "--search-preset": "preset of the search: paper, small or tiny",
    "--train-preset": "preset of the trainings: paper, small or tiny",
    "--json": "also write the results to this file",
}


def walk_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``parser`` and every subcommand's parser below it, each with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from walk_parsers(child, (*path, name))


def top_parser(description: str) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """``nao`` with an empty set of subcommands; fill it, then call ``finish_parser``."""
    p = argparse.ArgumentParser(
        prog="nao",
        usage="%(prog)s [-h] [-v] [-q] COMMAND ...",
        description=description,
        epilog='Run "nao COMMAND --help" for the options of one command.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # The commands are listed by finish_parser, nested ones too, so argparse lists none.
    sub = p.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help=argparse.SUPPRESS, prog="nao"
    )
    return p, sub


def finish_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``-v``/``-q`` on every command, the shared options' help where a command gave none,
    and every command listed with its one-line help in ``nao --help``."""
    add_verbosity_options(p)
    for _, parser in walk_parsers(p):
        for action in parser._actions:
            name = action.option_strings[-1] if action.option_strings else ""
            if not action.help and name in SHARED_HELP:
                action.help = SHARED_HELP[name]
    p.description = f"{p.description}\n\n{describe_commands(p)}"
    return p


def describe_commands(parser: argparse.ArgumentParser, width: int = 100) -> str:
    """The "commands:" section of ``parser``'s help: every command that runs, a nested one by
    its full name ("bench nb201"), each with its one-line help."""
    helps: dict[tuple[str, ...], str] = {}
    rows = []
    for path, p in walk_parsers(parser):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        for action in subs:
            helps |= {(*path, c.dest): c.help or "" for c in action._choices_actions}
        if path and not subs:
            rows.append((" ".join(path), helps[path]))
    col = max(len(name) for name, _ in rows) + 4
    lines = ["commands:"]
    for name, text in rows:
        wrapped = textwrap.wrap(text, width - col) or [""]
        lines.append(f"  {name:<{col - 2}}{wrapped[0]}")
        lines += [" " * col + more for more in wrapped[1:]]
    return "\n".join(lines)


def add_verbosity_options(parser: argparse.ArgumentParser) -> None:
    """``-v``/``-q`` on ``parser`` and on every subcommand below it, so that they go before or
    after any subcommand. A subparser parses into a fresh namespace and copies it over the
    one above, so each level counts into its own attributes; ``verbosity`` adds them up."""
    for path, p in walk_parsers(parser):
        default = 0 if not path else argparse.SUPPRESS
        p.add_argument(
            "-v", "--verbose", action="count", dest=f"verbose{len(path)}", default=default,
            help="more log lines on stderr: -v info, -vv debug",
        )  # fmt: skip
        p.add_argument(
            "-q", "--quiet", action="count", dest=f"quiet{len(path)}", default=default,
            help="errors only: no progress bar or progress lines",
        )  # fmt: skip


def verbosity(args: argparse.Namespace) -> int:
    """The ``-v`` count minus the ``-q`` count, wherever on the command line they were."""
    items = vars(args).items()
    return sum(v for k, v in items if k.startswith("verbose")) - sum(
        v for k, v in items if k.startswith("quiet")
    )


def configure_logging(level: int) -> None:
    """Root handler on stderr at the level of ``level`` (a verbosity); progress lines on
    unless quiet."""
    logging.basicConfig(level=_LEVELS[max(-1, min(level, 2))], format=LOG_FORMAT)
    logger.setLevel(logging.INFO if level >= 0 else logging.ERROR)


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class BarCallback:
    """A ``Callback`` that draws one tqdm bar at a time on ``file``: a phase's epochs (the
    epoch metrics beside it) or items. A train phase inside a phase of trainings reads
    "candidates 3/8 train"; pool rounds and proposals stay log lines, written above the bar."""

    def __init__(self, file: TextIO, log: logging.Logger | None = None) -> None:
        from nao_core.engine.callbacks import LoggingCallback

        self.lines = LoggingCallback(log)
        self.file = file
        self.bar: tqdm | None = None
        self.key: tuple[str, int] = ("", 0)  # the bar's label and total
        self.epochs: tuple[str, int] = ("", 0)  # the key of the last bar that counts epochs
        self.outer: tuple[str, int] | None = None  # the open phase of trainings: name, total
        self.items = 0  # trainings started in it
        self.left_at: dict[tuple[str, int], int] = {}  # a bar's count when it was replaced

    def on_phase(self, name: str, total: int) -> None:
        label = str(name)
        if name == "train" and self.outer is not None:
            self.items += 1
            label = f"{self.outer[0]} {self.items}/{self.outer[1]} {name}"
        elif name in _OUTER_PHASES:
            self.outer, self.items = (label, total), 0
        else:
            self.outer = None
        self._open(label, total, _UNITS.get(name, "epoch"))
        if name in _EPOCH_PHASES:
            self.epochs = self.key

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self.bar is None or self.key != self.epochs:
            # The search scores the pool before the epoch that led to it is reported.
            self.left_at[self.epochs] = epoch
            return
        self.bar.set_postfix_str(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()), False)
        self.bar.update(max(epoch - self.bar.n, 0))

    def on_pool_scored(self, round: int, pool: Sequence[PoolEntry]) -> None:
        self.lines.on_pool_scored(round, pool)

    def on_proposals(self, round: int, archs: Sequence[PoolEntry]) -> None:
        self.lines.on_proposals(round, archs)

    def should_stop(self) -> bool:
        return False

    def close(self) -> None:
        if self.bar is not None:
            self.left_at[self.key] = self.bar.n
            self.bar.close()
            self.bar = None

    def _open(self, label: str, total: int, unit: str) -> None:
        from tqdm import tqdm

        self.close()
        # The supernet phase comes back after each pool round: go on from where it was.
        self.key = (label, total)
        start = self.left_at.get(self.key, 0)
        self.bar = tqdm(
            total=total or None, initial=start, desc=label, unit=unit,
            file=self.file, dynamic_ncols=True, leave=False,
        )  # fmt: skip


class Console:
    """What one command shows, chosen from its verbosity and whether ``file`` (where bars
    and log lines go) is a terminal."""

    def __init__(self, level: int, file: TextIO | None = None) -> None:
        self.level, self.file = level, file or sys.stderr
        self.bars = level >= 0 and is_terminal(self.file)

    @contextlib.contextmanager
    def progress(self) -> Iterator[Callback]:
        """Progress hooks for one long run: a bar on a terminal (gone when the run returns),
        log lines elsewhere, none with ``-q``."""
        from nao_core.engine.callbacks import LoggingCallback, NullCallback

        if self.level < 0:
            yield NullCallback()
        elif not self.bars:
            yield LoggingCallback(logger)
        else:
            bar = BarCallback(self.file, logger)
            try:
                yield bar
            finally:
                bar.close()

    @contextlib.contextmanager
    def running(self, elapsed: str | None = None) -> Iterator[None]:
        """Around a command. On a terminal, log lines and stdout are written above the bar,
        and ``elapsed`` (a label) shows a line with the time spent so far."""
        if not self.bars:
            yield
            return
        from tqdm.contrib.logging import logging_redirect_tqdm

        with contextlib.ExitStack() as stack:  # left in reverse: the elapsed line first
            stack.enter_context(logging_redirect_tqdm())
            if is_terminal(sys.stdout):
                out = AboveBars(sys.stdout, self.file)
                stack.enter_context(contextlib.redirect_stdout(out))  # type: ignore[type-var]
                stack.callback(out.flush)
            if elapsed:
                stack.enter_context(self._elapsed(elapsed))
            yield

    @contextlib.contextmanager
    def _elapsed(self, label: str) -> Iterator[None]:
        from tqdm import tqdm

        bar = tqdm(desc=label, bar_format="{desc} [{elapsed}]", file=self.file, leave=False)
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(1.0):
                bar.refresh()

        ticker = threading.Thread(target=tick, name="nao-elapsed", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
            bar.close()


class AboveBars:
    """Stdout while bars are drawn on the same terminal: each whole line is written with the
    bars cleared first and drawn again after it (a part line waits for its end)."""

    def __init__(self, stream: TextIO, bar_file: TextIO) -> None:
        self.stream, self.bar_file, self.rest = stream, bar_file, ""

    def write(self, text: str) -> int:
        from tqdm import tqdm

        lines, newline, self.rest = (self.rest + text).rpartition("\n")
        if newline:
            with tqdm.external_write_mode(file=self.bar_file):
                self.stream.write(lines + newline)
                self.stream.flush()
        return len(text)

    def flush(self) -> None:
        if self.rest:
            self.stream.write(self.rest)
            self.rest = ""
        self.stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)
