"""The ``nao`` command.

nao spaces                              list the search spaces
nao arch SPACE "ARCH"                   validate an architecture; print its forms
nao presets                             list the named configurations
nao bench nb201 --table PATH ...        NAO vs random vs evolution on a tabular benchmark
nao bench controller                    one controller round at the paper's settings, timed
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from nao_core.errors import NaoCoreError


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


def _cmd_presets(args: argparse.Namespace) -> int:
    from nao_core.presets import list_presets

    print("\n".join(list_presets()))
    return 0


def _cmd_bench_nb201(args: argparse.Namespace) -> int:
    from nao_core.bench import nb201

    return nb201.main(args)


def _cmd_bench_controller(args: argparse.Namespace) -> int:
    from nao_core.bench import controller

    return controller.main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nao", description="Neural Architecture Optimization")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("spaces", help="list the search spaces").set_defaults(func=_cmd_spaces)
    sub.add_parser("presets", help="list the named configurations").set_defaults(func=_cmd_presets)
    a = sub.add_parser("arch", help="validate an architecture string and print its forms")
    a.add_argument("space")
    a.add_argument("arch")
    a.set_defaults(func=_cmd_arch)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    b = bench.add_parser("nb201", help="search strategies on a tabular benchmark")
    b.add_argument("--table", required=True, help="CSV(.gz) with arch_str and metric columns")
    b.add_argument("--methods", default="nao,random,evolution")
    b.add_argument("--queries", default="50,100,150", help="query budgets, comma-separated")
    b.add_argument("--seeds", type=int, default=20)
    b.add_argument("--signal", default="c10_valid_acc_200ep", help="column searched on")
    b.add_argument("--report", default="c10_test_acc_200ep", help="column reported")
    b.add_argument("--space", default="nb201")
    b.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    b.add_argument(
        "--set", action="append", metavar="METHOD.KEY=VALUE", help="e.g. nao.initial_pool=30"
    )
    b.add_argument("--json", help="also write the rows as JSON to this file")
    b.set_defaults(func=_cmd_bench_nb201)

    c = bench.add_parser("controller", help="time one controller round (pool 600, batch 100)")
    c.add_argument("--epochs", type=int, default=1000)
    c.add_argument("--baseline-epochs", type=int, default=5)
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--json")
    c.set_defaults(func=_cmd_bench_controller)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except NaoCoreError as exc:
        print(f"nao: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
