"""The method's commands of ``nao``: their parsers and handlers (``cli/main.py`` adds the
service's to the same parser tree through ``add_commands``; ``nao --help`` lists them all).

nao search --dataset ptb --data-dir DIR --preset small --out D          RNN search on PTB
nao train --arch-name nao-ws-rnn --dataset ptb --data-dir DIR --out D   LM final training
nao eval --checkpoint D/model.pt --data-dir DIR                         valid/test perplexity
nao export --checkpoint D/model.pt --format onnx --out model.onnx        ONNX + model card
Re-running search or train on the folder of a killed run resumes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

from nao_core.console import (
    SHARED_HELP,
    Console,
    configure_logging,
    finish_parser,
    top_parser,
    verbosity,
)
from nao_core.errors import InvalidConfig, NaoCoreError


def _cmd_spaces(args: argparse.Namespace) -> int:
    from nao_core.search_space import create_search_space, list_search_spaces

    for name in list_search_spaces():
        s = create_search_space(name)
        print(f"{name:<10} tokens={s.length:<3} vocab={s.vocab_size:<3} group={s.group}")
    return 0


def _cmd_arch(args: argparse.Namespace) -> int:
    from nao_core.search_space import create_search_space

    space = create_search_space(args.space)
    arch = space.parse(args.arch)
    out = {
        "space": space.name,
        "arch": space.to_str(arch),
        "canonical": space.canonical_key(arch),
        "hash": space.canonical_hash(arch),
        "tokens": list(space.encode(arch)),
    }
    print(json.dumps(out, indent=2))
    return 0


def _cmd_draw(args: argparse.Namespace) -> int:
    from nao_core.draw import draw_svg
    from nao_core.search_space.named import get_named_arch, list_named_archs

    arch, title = args.arch, None
    if arch in list_named_archs():
        space, arch = get_named_arch(arch)
        if space != args.space:
            raise InvalidConfig(f"{args.arch} is an architecture of space {space!r}")
        title = args.arch
    svg = draw_svg(args.space, arch, title=title)
    if args.out is None:
        sys.stdout.write(svg)
    else:
        Path(args.out).write_text(svg)
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from nao_core.presets import list_presets

    print("\n".join(list_presets()))
    return 0


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n else "-"


def _cmd_data_list(args: argparse.Namespace) -> int:
    from nao_core.catalog import entries

    rows = entries(args.data_dir)
    print(f"data directory: {rows[0].data_dir}")
    print(f"{'name':<10} {'kind':<14} {'status':<9} {'size':>9}  where / official source")
    for st in rows:
        e = st.entry
        where = str(st.path) if st.installed else e.url
        state = "installed" if st.installed else "missing"
        print(f"{e.name:<10} {e.kind:<14} {state:<9} {_size(st.size):>9}  {where}")
    return 0


def _cmd_data_install(args: argparse.Namespace) -> int:
    from nao_core.catalog import get_entry

    get_entry(args.name)  # an unknown name fails here, before torch is imported
    from nao_core.installer import install

    done = install(args.name, args.data_dir, args.source, say=print)
    print(f"{done.name}: installed at {done.path} ({_size(done.size)})")
    return 0


def _cmd_bench_nb201(args: argparse.Namespace) -> int:
    from nao_core.bench import nb201

    return nb201.main(args)


def _cmd_bench_controller(args: argparse.Namespace) -> int:
    from nao_core.bench import controller

    return controller.main(args)


def build_parser() -> argparse.ArgumentParser:
    """The method's commands alone (``python -m nao_core.cli``); ``nao`` adds the service's."""
    p, sub = top_parser("Neural Architecture Optimization (Luo et al., NeurIPS 2018)")
    add_commands(sub)
    return finish_parser(p)


def add_commands(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add the method's commands to ``sub``. Returns the ``bench`` group, to which the
    service adds its own benchmark."""
    sub.add_parser("spaces", help="list the search spaces").set_defaults(func=_cmd_spaces)
    a = sub.add_parser("arch", help="validate an architecture string and print its forms")
    a.add_argument("space", help="search space, e.g. cnn, rnn or nb201 (see nao spaces)")
    a.add_argument("arch", help="the architecture: integers or the text form, quoted")
    a.set_defaults(func=_cmd_arch)
    d = sub.add_parser("draw", help="draw an architecture's cells as an SVG file")
    d.add_argument("space", help="search space, e.g. cnn, rnn or nb201 (see nao spaces)")
    d.add_argument("arch", help="integers, the text form (quoted) or a name such as naonet-a")
    d.add_argument("-o", "--out", default=None, help="SVG file to write (default: stdout)")
    d.set_defaults(func=_cmd_draw)
    sub.add_parser("presets", help="list the named configurations").set_defaults(func=_cmd_presets)
    _add_data_commands(sub)
    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(
        dest="bench", required=True, metavar="BENCHMARK"
    )
    _add_bench_commands(bench)
    _add_run_commands(sub, bench)
    _add_export_command(sub)
    _add_controller_commands(sub)
    from nao_core.bench import improve, nows, quality, scoring

    quality.add_parser(bench)
    nows.add_parser(bench)
    improve.add_parser(bench)
    scoring.add_parser(bench)
    return bench


def _add_bench_commands(bench: argparse._SubParsersAction) -> None:
    b = bench.add_parser("nb201", help="search strategies on a tabular benchmark")
    b.add_argument(
        "--table",
        default=None,
        help="CSV(.gz) with arch_str and metric columns (default: the NAS-Bench-201 table, "
        "from the data directory if installed there, else the copy shipped with nao)",
    )
    b.add_argument(
        "--methods",
        default="nao,random,evolution",
        help="of nao (the tabular default), nao-paper (NAO as first published for the "
        "benchmark), seminas (nao-paper + pseudo-labels), random, evolution",
    )
    b.add_argument(
        "--tasks",
        default=None,
        help="signal -> report pairs, comma-separated, of c10 (200-epoch valid -> test), c100 "
        "and in16 (12-epoch valid -> 200-epoch test); replaces --signal/--report",
    )
    b.add_argument("--queries", default="50,100,150", help="query budgets, comma-separated")
    b.add_argument("--seeds", type=int, default=20, help="runs per method and budget")
    b.add_argument(
        "--first-seed", type=int, default=0, help="seeds run from here (another sample: 20)"
    )
    b.add_argument("--signal", default="c10_valid_acc_200ep", help="column searched on")
    b.add_argument("--report", default="c10_test_acc_200ep", help="column reported")
    b.add_argument("--space", default="nb201", help="search space of the table")
    b.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    b.add_argument(
        "--set", action="append", metavar="METHOD.KEY=VALUE", help="e.g. nao.initial_pool=30"
    )
    b.add_argument("--json", help="also write the rows as JSON to this file")
    b.set_defaults(func=_cmd_bench_nb201)

    c = bench.add_parser("controller", help="time one controller round (pool 600, batch 100)")
    c.add_argument("--epochs", type=int, default=1000, help="controller epochs timed")
    c.add_argument(
        "--baseline-epochs", type=int, default=5, help="epochs of the plain formulation timed"
    )
    c.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    c.add_argument(
        "--replicas",
        type=int,
        default=2,
        help="model replicas per batch (default 2, as controller.replicas; 0: one per thread)",
    )
    c.add_argument("--json", help="also write the measurements to this file")
    c.set_defaults(func=_cmd_bench_controller)


# --- NAO-WS search, final training, evaluation (issue #3) ------------------------------------


def _space_of_dataset(dataset: str | None) -> str:
    """The default space for a dataset: "rnn" for a corpus (ptb, wikitext2), else "cnn"."""
    from nao_core.config import is_corpus

    return "rnn" if dataset is not None and is_corpus(dataset) else "cnn"


def _require_data(dataset: str, data_dir: str) -> None:
    """Fail before any training when the dataset is not installed, naming the install command."""
    from nao_core.catalog import CATALOG, require

    if dataset in CATALOG:
        require(dataset, data_dir)


def _set_threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _cmd_search(args: argparse.Namespace) -> int:
    """NAO-WS, or with ``--method nao`` a search without weight sharing in one process."""
    if args.method == "nao":
        from nao_core.search.nows import run_nao_search as run
        from nao_core.search.nows_cli import resolve_config

        cfg: Any = resolve_config(args)
    else:
        from nao_core.search.ws import run_search as run

        cfg = _ws_search_config(args)
        _require_data(cfg.data.dataset, args.data_dir)
    _set_threads(args)
    with args.console.progress() as callback:
        result = run(
            cfg, run_dir=args.out, data_dir=args.data_dir, device=args.device, callback=callback
        )
    if args.method == "nao":
        summary = {k: v for k, v in dataclasses.asdict(result).items() if k != "pool"}
    else:
        keys = ("status", "run_dir", "epoch", "rounds", "seconds")
        summary = {k: getattr(result, k) for k in keys} | {"top": result.top}
        if cfg.space == "rnn":  # scores are -log(ppl) (nao_core.evaluator.rnn)
            summary["top"] = [{**row, "ppl": math.exp(-row["score"])} for row in result.top]
    print(json.dumps(summary, indent=2))
    return 0 if result.status == "completed" else 3


def _ws_search_config(args: argparse.Namespace) -> Any:
    """The NAO-WS preset (a CNN or an RNN search config) with the command's overrides."""
    from nao_core.config import apply_overrides
    from nao_core.presets import search_preset

    space = args.space or _space_of_dataset(args.dataset)
    cfg = search_preset(space, args.preset)
    named = {"space": space if space != "rnn" else None, "data.dataset": args.dataset}
    cfg = apply_overrides(cfg, {k: v for k, v in named.items() if v is not None})
    return apply_overrides(cfg, args.set or [])


def _cmd_train(args: argparse.Namespace) -> int:
    from nao_core.config import apply_overrides
    from nao_core.presets import train_preset
    from nao_core.search_space.named import get_named_arch
    from nao_core.train import run_train

    if args.arch_name:
        space, arch = get_named_arch(args.arch_name)
    else:
        space, arch = args.space or _space_of_dataset(args.dataset), args.arch
    cfg = train_preset(space, args.preset, args.dataset)
    if args.dataset is not None:
        cfg = apply_overrides(cfg, {"data.dataset": args.dataset})
    cfg = apply_overrides(cfg, args.set or [])
    _require_data(cfg.data.dataset, args.data_dir)
    _set_threads(args)
    with args.console.progress() as callback:
        result = run_train(
            arch,
            space,
            cfg,
            out_dir=args.out,
            data_dir=args.data_dir,
            device=args.device,
            callback=callback,
        )
    print(json.dumps(result.__dict__, indent=2))
    return 0 if result.status == "completed" else 3


def _cmd_eval(args: argparse.Namespace) -> int:
    from nao_core.train import evaluate_checkpoint

    _set_threads(args)
    out = evaluate_checkpoint(
        args.checkpoint, data_dir=args.data_dir, device=args.device, split=args.split
    )
    print(json.dumps(out, indent=2))
    return 0


def _cmd_bench_supernet(args: argparse.Namespace) -> int:
    from nao_core.bench import supernet

    return supernet.main(args)


def _cmd_bench_rnn(args: argparse.Namespace) -> int:
    from nao_core.bench import rnn

    return rnn.main(args)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help=SHARED_HELP["--device"])
    p.add_argument("--threads", type=int, default=0, help=SHARED_HELP["--threads"])


def _add_job_args(p: argparse.ArgumentParser, out_help: str) -> None:
    """Arguments ``nao search`` and ``nao train`` share."""
    p.add_argument(
        "--dataset", default=None, help="cifar10, cifar100, digits (cnn); ptb, wikitext2 (rnn)"
    )
    p.add_argument("--data-dir", default=_data_dir(), help=_DATA_DIR_HELP)
    p.add_argument("--preset", default="small", help="paper, small or tiny")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. optim.epochs=10")
    _add_common(p)


_DATA_DIR_HELP = (
    "folder of the dataset files (default: $NAO_DATA_DIR, else $NAO_HOME/data, i.e. "
    "~/.nao/data; see nao data list)"
)


def _data_dir() -> str:
    from nao_core.catalog import default_data_dir

    return str(default_data_dir())


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="datasets and tables: list them, install one")
    cmds = data.add_subparsers(dest="data", required=True)
    ls = cmds.add_parser("list", help="every dataset and table: installed or missing, size")
    ls.add_argument("--data-dir", default=_data_dir(), help=_DATA_DIR_HELP)
    ls.set_defaults(func=_cmd_data_list)
    i = cmds.add_parser(
        "install", help="download the official archive (or use --from), check it, put it in place"
    )
    i.add_argument("name", help="cifar10, cifar100, ptb, wikitext2, digits or nb201")
    i.add_argument(
        "--from",
        dest="source",
        metavar="PATH",
        default=None,
        help="offline: the official archive (cifar-10-python.tar.gz, cifar-100-python.tar.gz, "
        "simple-examples.tgz, wikitext-2-v1.zip) or a folder that holds the files",
    )
    i.add_argument("--data-dir", default=_data_dir(), help=_DATA_DIR_HELP)
    i.set_defaults(func=_cmd_data_install)


def _add_run_commands(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    s = sub.add_parser("search", help="NAO-WS search (resumes a killed run in --out)")
    s.add_argument(
        "--space", default=None, help="cnn or rnn (default: rnn for ptb/wikitext2, else cnn)"
    )
    s.add_argument(
        "--method", default="nao-ws", choices=("nao-ws", "nao"), help="nao: no weight sharing"
    )
    _add_job_args(s, out_help="run folder")
    s.set_defaults(func=_cmd_search)

    t = sub.add_parser("train", help="train an architecture from scratch (resumes in --out)")
    arch = t.add_mutually_exclusive_group(required=True)
    arch.add_argument("--arch", help="architecture string (integers or the text form)")
    arch.add_argument(
        "--arch-name", help="nao-ws-cnn, naonet-a, naonet-b, naonet-v2, nao-ws-rnn or nao-rnn"
    )
    t.add_argument(
        "--space",
        default=None,
        help="space of --arch: cnn, cnn-large or rnn (default: rnn for ptb/wikitext2, else cnn)",
    )
    _add_job_args(t, out_help="output folder")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser(
        "eval", help="test accuracy, parameters and FLOPs (CNN) or valid/test perplexity (RNN)"
    )
    e.add_argument("--checkpoint", required=True, help="model.pt written by nao train")
    e.add_argument("--data-dir", default=_data_dir(), help=_DATA_DIR_HELP)
    e.add_argument("--split", default=None, help="test, valid or train (default: as trained)")
    _add_common(e)
    e.set_defaults(func=_cmd_eval)

    b = bench.add_parser("supernet", help="supernet / final-net throughput, paper projection")
    b.add_argument("--steps", type=int, default=8, help="timed training steps / scored archs")
    b.add_argument("--final-steps", type=int, default=2, help="timed steps of the N=6 C=36 net")
    b.add_argument("--controller-epochs", type=int, default=3, help="timed controller epochs")
    b.add_argument(
        "--no-graphs", action="store_true", help="CUDA: skip the CUDA-graph rows (eager only)"
    )
    b.add_argument("--json", help="also write the measurements to this file")
    _add_common(b)
    b.set_defaults(func=_cmd_bench_supernet)

    r = bench.add_parser("rnn", help="RNN supernet / final LM throughput, paper projection")
    r.add_argument("--steps", type=int, default=2, help="timed windows / scored archs")
    r.add_argument("--json", help="also write the measurements to this file")
    _add_common(r)
    r.set_defaults(func=_cmd_bench_rnn)


def _cmd_export(args: argparse.Namespace) -> int:
    from nao_core.export import export_checkpoint

    _set_threads(args)
    result = export_checkpoint(args.checkpoint, args.format, args.out)
    card = result.card
    summary = {
        "file": result.file,
        "card_json": result.card_json,
        "card_markdown": result.card_markdown,
        "parameters": card["parameters"],
        "flops": card["flops"]["total"],
        "check": card["export"]["check"],
    }
    print(json.dumps(summary, indent=2))
    return 0


def _add_export_command(sub: argparse._SubParsersAction) -> None:
    x = sub.add_parser(
        "export",
        help="a trained model as ONNX or TorchScript, with its model card (FILE.card.json/.md)",
    )
    x.add_argument("--checkpoint", required=True, help="model.pt written by nao train")
    x.add_argument(
        "--format", required=True, help="onnx (CNN) or torchscript (CNN or RNN language model)"
    )
    x.add_argument("--out", required=True, help="the file to write; its card goes beside it")
    x.add_argument("--threads", type=int, default=0, help=SHARED_HELP["--threads"])
    x.set_defaults(func=_cmd_export)


# --- questions to a search's controller -----------------------------------------------------


def _controller_file(args: argparse.Namespace) -> Path:
    """``--controller PATH``, or the last round's controller of ``--run RUN_DIR``."""
    if args.controller:
        return Path(args.controller)
    from nao_core.controller.bundle import latest_controller
    from nao_core.errors import MissingData

    if not Path(args.run).is_dir():
        raise MissingData(f"run folder {args.run} not found")
    return latest_controller(args.run)


def _read_archs(args: argparse.Namespace) -> list[str]:
    archs = list(args.arch or [])
    if args.file:
        from nao_core.errors import MissingData

        path = Path(args.file)
        if not path.is_file():
            raise MissingData(f"architecture file {path} not found")
        lines = (line.strip() for line in path.read_text().splitlines())
        archs += [line for line in lines if line and not line.startswith("#")]
    if not archs:
        raise InvalidConfig("give architectures with --arch or --file")
    return archs


def _controller_line(path: Path, bundle: Any) -> str:
    pool = len(bundle.pool_archs)
    return f"controller {path}: space {bundle.space}, round {bundle.round}, pool {pool}"


def _cmd_improve(args: argparse.Namespace) -> int:
    from nao_core.controller.bundle import load_bundle
    from nao_core.controller.queries import improve_arch

    path = _controller_file(args)
    bundle = load_bundle(path)
    found = improve_arch(bundle, args.arch, args.n)
    rows = [
        {
            "arch": p.text,
            "canonical_hash": p.canonical_hash,
            "predicted": p.predicted,
            "step_size": p.step_size,
        }
        for p in found
    ]
    if args.json:
        out = {"controller": str(path), "space": bundle.space, "round": bundle.round}
        print(json.dumps(out | {"proposals": rows}, indent=2))
        return 0
    print(_controller_line(path, bundle))
    print(f"{'#':>3}  {'predicted':>9}  {'step':>7}  architecture")
    for i, r in enumerate(rows, 1):
        print(f"{i:>3}  {r['predicted']:>9.4g}  {r['step_size']:>7.3g}  {r['arch']}")
    if not rows:
        print("no new architecture: every step decoded to the seed or a measured one")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import dataclasses as dc

    from nao_core.controller.bundle import load_bundle
    from nao_core.controller.queries import predict

    path = _controller_file(args)
    bundle = load_bundle(path)
    preds = predict(bundle, _read_archs(args), k=args.k)
    if args.json:
        out = {"controller": str(path), "space": bundle.space, "round": bundle.round}
        print(json.dumps(out | {"predictions": [dc.asdict(p) for p in preds]}, indent=2))
        return 0
    level = f"{preds[0].level:.0%} interval"
    print(_controller_line(path, bundle))
    head = f"{'predicted':>9}  {level:>17}  {'rank':>9}  {'distance':>8}  {'measured':>8}"
    print(f"{head}  architecture")
    for p in preds:
        interval = f"{p.interval[0]:.4g}..{p.interval[1]:.4g}"
        measured = "-" if p.measured is None else f"{p.measured:.4g}"
        print(
            f"{p.predicted:>9.4g}  {interval:>17}  {f'{p.rank}/{p.pool_size}':>9}  "
            f"{p.distance:>8.3f}  {measured:>8}  {p.arch}"
        )
    return 0


def _add_controller_source(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--controller", help="a controller checkpoint (controllers/round-NNN.pt)")
    src.add_argument("--run", help="a search's run folder: its last round's controller")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_controller_commands(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser(
        "improve", help="better architectures near one, by the controller's gradient step"
    )
    _add_controller_source(i)
    i.add_argument("--arch", required=True, help="the architecture to improve (its text form)")
    i.add_argument("--n", type=int, default=10, help="proposals, 1..100 (default 10)")
    i.set_defaults(func=_cmd_improve)
    p = sub.add_parser(
        "predict", help="the controller's predicted score of architectures, with uncertainty"
    )
    _add_controller_source(p)
    p.add_argument("--arch", nargs="+", help="architectures (text form, each quoted)")
    p.add_argument("--file", help="a file of architectures, one a line ('#' starts a comment)")
    p.add_argument("--k", type=int, default=5, help="nearest measured architectures, 1..50")
    p.set_defaults(func=_cmd_predict)


def run(args: argparse.Namespace) -> int:
    """Run a parsed command: logging and progress as ``-v``/``-q`` say, and an error the user
    caused as one line on stderr with exit status 2."""
    level = verbosity(args)
    configure_logging(level)
    if args.command in ("search", "train", "eval", "bench"):
        from nao_core.utils.allocator import keep_freed_memory

        keep_freed_memory()  # before the first tensor: CPU steps stop page-faulting
    args.console = Console(level)
    # eval and bench report no progress events: on a terminal they show the time spent.
    elapsed = " ".join(filter(None, ("nao", args.command, getattr(args, "bench", None))))
    try:
        with args.console.running(elapsed if args.command in ("eval", "bench") else None):
            return int(args.func(args))
    except NaoCoreError as exc:
        return report_error(str(exc))


def report_error(message: str) -> int:
    """``nao: error: message`` on stderr; the exit status of an error the user caused."""
    print(f"nao: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
