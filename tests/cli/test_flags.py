"""Flags cannot drift from the configs.

Walks every command that builds a config (those with ``--set``) and, for each field of its
config class, nested groups included: the field can be set from that command's command
line (its own flag where it has one, and ``--set`` always), and every option named after
a field has that field's default and docstring. Options that are not fields (shorthands,
``--config``, ``--dry-run``) carry no default of their own. Parsing only: ``config_from_argv``
builds the config without running the command.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from types import UnionType
from typing import Any, Literal, get_args, get_origin

import pytest
import typer
from pydantic import BaseModel, TypeAdapter

from cai.cli import app, config_from_argv
from cai.errors import CaiError

CONFIG_COMMANDS = {
    "generate-revisions",
    "judge",
    "judge calibrate",
    "evaluate",
    "best-of-n",
    "quality",
    *(f"train {k}" for k in ("sft", "reward", "dpo", "ppo", "grpo", "rloo")),
}


ARGUMENTS = {"quality": ["out/revisions"]}
"""A command's positional arguments, given before its options."""

NEEDS = {"combine": ["--set", "rewards=[{kind: toxicity}, {kind: model, path: r}]"]}
"""What a field's validator needs set along with it (safety-switch takes two rewards)."""
NEEDED = {"rewards"}


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        path = (*prefix, name)
        yield path, cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, path)


def config_commands() -> dict[str, Any]:
    """Every command with a --config option, by its words ("train sft")."""
    root = typer.main.get_command(app)
    found = {}
    for path, cmd in _commands(root):
        if any("--config" in p.opts for p in cmd.params):
            found[" ".join(path)] = cmd
    return found


COMMANDS = config_commands()


def _strip(annotation):
    if get_origin(annotation) is typing.Annotated:
        return _strip(get_args(annotation)[0])
    if get_origin(annotation) in (typing.Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip(args[0])
    return annotation


def _group(annotation) -> type[BaseModel] | None:
    inner = _strip(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def fields(cls: type[BaseModel], prefix=()):
    """(path, FieldInfo, owner class) of every field, nested groups flattened."""
    for name, info in cls.model_fields.items():
        group = _group(info.annotation)
        if group is not None:
            yield from fields(group, (*prefix, name))
        else:
            yield (*prefix, name), info, cls


def value_at(cfg: BaseModel, cls: type[BaseModel], path: tuple[str, ...]) -> Any:
    """The value at ``path``; below a group that is null, the group class's default."""
    node: Any = cfg
    for name in path:
        info = cls.model_fields[name]
        if node is not None:
            node = getattr(node, name)
        elif not info.is_required():
            node = info.get_default(call_default_factory=True)
        cls = _group(info.annotation) or cls
    return node


def sample_value(path: tuple[str, ...], info, current: Any) -> Any:
    """A valid value for the field that differs from ``current``."""
    ann = _strip(info.annotation)
    origin, args = get_origin(ann), get_args(ann)
    name = path[-1]
    if ann is bool:
        return not current
    if origin is Literal:
        return next(a for a in args if a != current)
    if ann is int:
        return 3 if current is None else current + 1
    if ann is float or set(args) == {int, float}:
        return current / 2 if current else 0.25
    if ann is str:
        return f"x-{name}"
    if ann is Path:
        return Path("x") / name
    if origin is tuple and set(args) == {float}:
        return tuple(0.25 * (i + 1) for i in range(len(args)))
    if origin is dict:
        return {"max_steps": 3}
    if (origin is list and args == (str,)) or (list[str] in args and str in args):
        return [f"x-{name}-1", f"x-{name}-2"]
    if origin is list and _group(args[0]) is not None:
        return [{"kind": "toxicity", "weight": 0.5}]
    raise AssertionError(f"no test value for {'.'.join(path)}: {ann}; teach sample_value")


def base_argv(words: str, tmp_path: Path) -> list[str]:
    """The command's words, and a --config YAML that gives its required fields (calibrate's
    gold), so that the command line under test wins over them."""
    argv = [*words.split(), *ARGUMENTS.get(words, [])]
    try:
        cls = type(config_from_argv(argv))
    except CaiError:  # a required field is missing: find the class with a placeholder
        cls = type(config_from_argv([*argv, "--set", "gold=g.jsonl"]))
    required = {".".join(p): "x-required" for p, info, _ in fields(cls) if info.is_required()}
    if not required:
        return argv
    yml = tmp_path / "required.yaml"
    yml.write_text(json.dumps(required))
    return [*argv, "--config", str(yml)]


def _option_for(cmd, path: tuple[str, ...]):
    for p in cmd.params:
        if p.name == "__".join(path):
            return p
    return None


def _flag_argv(option, value: Any) -> list[str]:
    if option.is_flag:
        return [option.opts[0] if value else option.secondary_opts[0]]
    if isinstance(value, list):
        return [x for v in value for x in (option.opts[0], str(v))]
    if isinstance(value, tuple):
        return [option.opts[0], *map(str, value)]
    return [option.opts[0], str(value)]


def _yaml(value: Any) -> str:
    return json.dumps(value, default=str)


def test_every_config_command_is_walked():
    assert CONFIG_COMMANDS <= set(COMMANDS), sorted(CONFIG_COMMANDS - set(COMMANDS))
    for words, cmd in COMMANDS.items():
        assert any("--set" in p.opts for p in cmd.params), f"cai {words}: --config but no --set"


@pytest.mark.parametrize("words", sorted(COMMANDS))
def test_every_field_can_be_set_from_the_command_line(words, tmp_path):
    cmd = COMMANDS[words]
    argv = base_argv(words, tmp_path)
    default = config_from_argv(argv)
    cls = type(default)
    flagged = 0
    for path, info, _ in fields(cls):
        dotted = ".".join(path)
        value = sample_value(path, info, value_at(default, cls, path))
        expected = TypeAdapter(info.annotation).validate_python(value)
        ways = [[*NEEDS.get(dotted, []), "--set", f"{dotted}={_yaml(value)}"]]
        option = _option_for(cmd, path)
        if option is not None:
            ways.append([*NEEDS.get(dotted, []), *_flag_argv(option, value)])
            flagged += 1
        for way in ways:
            cfg = config_from_argv([*argv, *way])
            got = value_at(cfg, cls, path)
            assert got == expected, f"cai {words} {' '.join(way)}: {dotted} is {got!r}"
            others = [
                p
                for p, _, _ in fields(cls)
                if p != path and ".".join(p) not in NEEDED
                if value_at(cfg, cls, p) != value_at(default, cls, p)
            ]
            assert not others, f"cai {words} {' '.join(way)} also changed {others}"
    assert flagged >= len(cls.model_fields) // 2, f"cai {words}: most fields have their own flag"


@pytest.mark.parametrize("words", sorted(COMMANDS))
def test_named_flags_have_their_fields_defaults_and_docstrings(words, tmp_path):
    cmd = COMMANDS[words]
    default = config_from_argv(base_argv(words, tmp_path))
    cls = type(default)
    by_param = {"__".join(path): (path, info, owner) for path, info, owner in fields(cls)}
    for option in cmd.params:
        if option.name not in by_param:
            # not a field: a shorthand, --config, --set or the command's own switch
            assert option.default in (None, False, (), []), (
                f"cai {words} {option.opts[0]}: a flag that is not a field has no default"
            )
            continue
        path, info, owner = by_param[option.name]
        want = None if info.is_required() else value_at(default, cls, path)
        got = option.default
        if isinstance(got, list | tuple) and not isinstance(want, list | tuple):
            got = got[0] if len(got) == 1 else got  # `list[str] | str`: one value is a str
        if isinstance(want, tuple) or isinstance(got, tuple):
            got, want = list(got), list(want)
        assert got == want, f"cai {words} {option.opts[0]}: default {got!r}, field {want!r}"
        doc = next(
            k.model_fields[path[-1]].description
            for k in owner.__mro__
            if path[-1] in getattr(k, "model_fields", {}) and k.model_fields[path[-1]].description
        )
        assert " ".join(doc.split()) in (option.help or ""), f"cai {words} {option.opts[0]}"


def test_precedence_defaults_yaml_flags_then_set(tmp_path):
    yml = tmp_path / "run.yaml"
    yml.write_text("limit: 5\nchunk_size: 7\nrounds: 2\nbackend: {model: from-yaml, device: cpu}\n")
    cfg = config_from_argv(
        ["generate-revisions", "--config", yml, "--limit", "3", "--model", "from-flag",
         "--rounds", "4", "--set", "rounds=6"]
    )  # fmt: skip
    assert cfg.limit == 3  # the flag over the YAML
    assert cfg.chunk_size == 7  # the YAML over the default; the flag's default does not win
    assert cfg.backend.model == "from-flag" and cfg.backend.device == "cpu"  # groups merge
    assert cfg.rounds == 6  # --set last
    assert cfg.sampling.seed == 0  # untouched defaults stay


def test_none_clears_an_optional_field_or_group():
    cfg = config_from_argv(["judge", "--policy", "p", "--num-candidates", "3"])
    assert cfg.policy.model == "p"
    assert config_from_argv(["judge", "--policy", "none"]).policy is None
    assert config_from_argv(["evaluate", "--judge-model", "none"]).judge_model is None


def test_command_defaults_show_and_apply():
    assert config_from_argv(["train", "rloo"]).output == Path("out/rloo")
    assert config_from_argv(["train", "grpo"]).output == Path("out/grpo")
    rloo = COMMANDS["train rloo"]
    assert _option_for(rloo, ("output",)).default == Path("out/rloo")


def test_set_errors_are_one_line(tmp_path):
    with pytest.raises(CaiError, match="key=value"):
        config_from_argv(["judge", "--set", "oops"])
    with pytest.raises(CaiError, match=r"command line: field 'no_such'"):
        config_from_argv(["judge", "--set", "no_such=1"])
    with pytest.raises(CaiError, match=r"field 'judge.batch_size'"):
        config_from_argv(["judge", "--set", "judge.batch_size=0"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("chunk_size: 0\n")
    with pytest.raises(CaiError, match=rf"{bad}: field 'chunk_size'"):
        config_from_argv(["judge", "--config", bad])
    # a train --set key that is no field is trl's
    assert config_from_argv(["train", "sft", "--set", "warmup_ratio=0.1"]).trl == {
        "warmup_ratio": 0.1
    }
