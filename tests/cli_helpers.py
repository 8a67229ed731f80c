"""Checks shared by the tests of the ``nao`` parser tree (nao_core's commands and the whole)."""

from __future__ import annotations

import argparse

from nao_core.console import walk_parsers


def options_without_help(parser: argparse.ArgumentParser) -> list[str]:
    """Every argument and subcommand in the tree that has no help text, by command path."""
    missing = []
    for path, p in walk_parsers(parser):
        command = " ".join(("nao", *path))
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{command} {c.dest}" for c in action._choices_actions if not c.help]
            elif not action.help:
                missing.append(f"{command} {'/'.join(action.option_strings) or action.dest}")
    return missing
