"""`invfussion ... --help`: every option of every command explains itself; restore lists what it takes."""

from __future__ import annotations

import argparse
import re

from invfussion.cli import build_parser


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(command path, parser)`` of the top parser and every sub-command, recursively."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def test_every_option_of_every_command_has_help():
    missing = [f"{' '.join(path) or 'invfussion'} {action.option_strings or action.dest}"
               for path, parser in commands(build_parser()) for action in parser._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert not missing, missing
    assert len(list(commands(build_parser()))) == 9  # the top parser and its 8 commands


def test_restore_help_lists_the_families_and_the_shipped_models():
    from invfussion.degradations import FAMILIES
    from invfussion.models.load import SHIPPED

    parsers = dict(commands(build_parser()))
    text = " ".join(parsers[("restore",)].format_help().split())  # unwrapped
    for name in (*FAMILIES, *SHIPPED):
        assert re.search(rf"[ :]{re.escape(name)}[,\s]", text + " "), name


def test_the_train_defaults_in_the_help_are_the_configs():
    """Train options parse to None when left out (so --resume can tell them apart); their help
    states the default instead, which must be TrainConfig's."""
    from invfussion.cli import _TRAIN_OPTIONS_OF
    from invfussion.training import TrainConfig

    train = dict(commands(build_parser()))[("train",)]
    fields = {_TRAIN_OPTIONS_OF.get(f, f): f for f in TrainConfig.__dataclass_fields__}
    checked = 0
    for action in train._actions:
        found = re.search(r"default:? ([-\w.:,=]+[\w])", action.help or "")
        default = getattr(TrainConfig(), fields.get(action.dest, "resume"))
        if action.dest in fields and found and default is not None:
            assert found.group(1) == str(default) or float(found.group(1)) == default, (action.dest, found.group(1))
            checked += 1
    assert checked >= 15
