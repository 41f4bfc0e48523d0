"""Command-line options derived from a command's config class, so a flag cannot drift.

Every field of the config becomes an option: its name is the field's (``chunk_size`` is
``--chunk-size``), its help is the field's docstring and its default is the field's own.
A nested group (a ``BackendConfig``, ``SamplingConfig``, LoRA settings) gives one option
per field under a prefix, by default the group's name: ``judge.model`` is
``--judge-model``; ``ConfigFlags.prefixes`` sets another (``""`` for none, so that
``backend.model`` is ``--model``). A field whose type a flag cannot hold (a list of
reward specs, the ``trl`` mapping) is set with ``--set``, as is anything else:
``--set judge.device=cpu``, the value read as YAML.

The order of precedence is fixed: the field defaults (and the command's own, e.g.
``out/rloo``), then the ``--config`` YAML, then the flags, then each ``--set`` in order.
Only the flags the user gave count, so a YAML value is never overwritten by a default.

``config_command`` turns ``body(cfg, ...)`` into a typer command with these options; the
body receives the finished config. ``parse_only`` makes the commands build their config
and return it without running (``cai.cli.config_from_argv``).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import typer
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from cai.config import CaiConfig, first_error, read_yaml
from cai.errors import CaiError

SEP = "__"
"""Joins a nested field's path into its parameter name: ``judge.model`` is ``judge__model``."""

CTX = "cai_ctx"
SCALARS = (str, int, float, bool, Path)


@dataclass(frozen=True)
class ConfigFlags:
    """How one command's options derive from its config class."""

    cls: type[CaiConfig]
    """The command's config."""
    prefixes: Mapping[str, str] = field(default_factory=dict)
    """A group field's flag prefix (default: the group's name and a dash; ``""`` for none)."""
    names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Flag declarations that replace the derived ones, by dotted field path (the names the
    README and scripts already use, e.g. ``"judge.base_url": ("--judge-base-url",
    "--base-url")``)."""
    skip: frozenset[str] = frozenset()
    """Dotted fields with no flag of their own (``--set`` and YAML still set them)."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """This command's defaults over the class's, by top-level field (below the YAML)."""
    extras: tuple[Callable[..., dict[str, Any]], ...] = ()
    """Functions whose typer-annotated parameters are more named flags (shorthands such as
    ``--max-steps``); each returns the overrides its flags make. Their defaults must be
    None or False: a shorthand never carries a default of its own."""
    set_fallback: str | None = None
    """A mapping field that takes the ``--set`` keys that name no field (``trl``)."""


@dataclass(frozen=True)
class Leaf:
    """One settable field: its path and what a flag for it needs to know."""

    path: tuple[str, ...]
    info: FieldInfo
    in_nullable_group: bool

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def param(self) -> str:
        return SEP.join(self.path)


def _strip(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``Annotated`` and ``None``, and whether None is allowed."""
    if get_origin(annotation) is Annotated:
        return _strip(get_args(annotation)[0])
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(get_args(annotation))
        args = [_strip(a)[0] for a in args]
        inner = args[0] if len(args) == 1 else typing.Union[tuple(args)]  # noqa: UP007
        return inner, nullable
    return annotation, False


def group_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The config class of a nested group field (or None), and whether it may be null."""
    inner, nullable = _strip(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner, nullable
    return None, nullable


def leaves(cls: type[BaseModel], prefix: tuple[str, ...] = (), nullable: bool = False):
    """Every field of ``cls``, nested groups flattened, in declaration order."""
    for name, info in cls.model_fields.items():
        group, group_nullable = group_of(info.annotation)
        if group is not None:
            yield from leaves(group, (*prefix, name), nullable or group_nullable)
        else:
            yield Leaf((*prefix, name), info, nullable)


def flag_type(annotation: Any) -> Any | None:
    """The type a flag for a field of this annotation takes, or None if a flag cannot hold
    it (then ``--set`` does). Lists are repeatable flags; a fixed tuple takes N values."""
    inner, _ = _strip(annotation)
    origin, args = get_origin(inner), get_args(inner)
    if inner in SCALARS or origin is Literal:
        return inner
    if origin in (typing.Union, types.UnionType):
        if set(args) == {int, float}:
            return float
        lists = [a for a in args if get_origin(a) is list]
        if len(lists) == 1 and flag_type(lists[0]) is not None:
            return lists[0]
        return None
    if origin is list and len(args) == 1 and args[0] in SCALARS:
        return inner
    if origin is tuple and args and Ellipsis not in args and all(a in SCALARS for a in args):
        return inner
    return None


def field_help(cls: type[BaseModel], leaf: Leaf) -> str:
    """The field's docstring, whitespace folded; a subclass that only changes a default
    keeps its base's docstring."""
    owner: Any = cls
    for name in leaf.path[:-1]:
        owner = group_of(owner.model_fields[name].annotation)[0]
    for klass in owner.__mro__:
        info = getattr(klass, "model_fields", {}).get(leaf.path[-1])
        if info is not None and info.description:
            return " ".join(info.description.split())
    return ""


def _flag_name(spec: ConfigFlags, leaf: Leaf) -> str:
    prefix = "".join(spec.prefixes.get(g, f"{g}-") for g in leaf.path[:-1])
    return prefix + leaf.path[-1].replace("_", "-")


def default_of(spec: ConfigFlags, leaf: Leaf) -> Any:
    """The value this command uses for ``leaf`` when nothing sets it: the command's own
    default, else the field's (inside a group whose default is an instance, the instance's)."""
    if len(leaf.path) == 1 and leaf.path[0] in spec.defaults:
        return spec.defaults[leaf.path[0]]
    owner: Any = spec.cls
    node: BaseModel | None = None
    for name in leaf.path:
        info = owner.model_fields[name]
        if node is not None:
            value = getattr(node, name)
        elif info.is_required():
            value = None
        else:
            value = info.get_default(call_default_factory=True)
        owner = group_of(info.annotation)[0]
        if owner is None:
            return value
        node = value if isinstance(value, BaseModel) else None
    raise AssertionError(leaf.dotted)


def flagged(spec: ConfigFlags) -> Iterator[tuple[Leaf, Any]]:
    """The fields that get a flag of their own, with the flag's type."""
    for leaf in leaves(spec.cls):
        kind = flag_type(leaf.info.annotation)
        if kind is not None and leaf.dotted not in spec.skip:
            yield leaf, kind


def _option(spec: ConfigFlags, leaf: Leaf, kind: Any) -> inspect.Parameter:
    name = _flag_name(spec, leaf)
    default = default_of(spec, leaf)
    if leaf.dotted in spec.names:
        decls = spec.names[leaf.dotted]
    elif kind is bool and name.startswith("no-"):
        decls = (f"--{name}",)
    elif kind is bool:
        decls = (f"--{name}/--no-{name}",)
    else:
        decls = (f"--{name}",)
    if leaf.path == ("output",):
        decls = (*decls, "-o")
    if kind is bool:
        annotation: Any = bool
        default = bool(default)
    else:
        annotation = kind | None
        if get_origin(kind) is list and isinstance(default, str):
            default = [default]  # `list[str] | str`: the one string shows as one value
        elif isinstance(default, list | tuple):
            default = copy.copy(default)
    doc = field_help(spec.cls, leaf)
    if len(leaf.path) > 1:  # name the nested field, as YAML and --set write it
        doc = f"{leaf.dotted}: {doc}"
    if leaf.in_nullable_group and leaf.path[-1] == "model":
        doc = f"{doc} `none`: no {leaf.path[-2]} at all."
    option = typer.Option(*decls, help=doc or None)
    return inspect.Parameter(
        leaf.param, inspect.Parameter.KEYWORD_ONLY, default=default,
        annotation=Annotated[annotation, option],
    )  # fmt: skip


def _extra_params(fn: Callable) -> list[inspect.Parameter]:
    return [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(fn, eval_str=True).parameters.values()
    ]


def _example(spec: ConfigFlags) -> str:
    """A ``--set`` example for this command: its first nested field, at its default."""
    nested = [leaf for leaf in leaves(spec.cls) if len(leaf.path) > 1] or list(leaves(spec.cls))
    leaf = next(x for x in nested if isinstance(default_of(spec, x), str | int | float))
    value = default_of(spec, leaf)
    shown = str(value).lower() if isinstance(value, bool) else value
    return f"{leaf.dotted}={shown}"


def _common_params(spec: ConfigFlags) -> list[inspect.Parameter]:
    where = f"{spec.cls.__module__}.{spec.cls.__name__}"
    trl = (
        f"; a key that is no field sets a field of `{spec.set_fallback}` (e.g. "
        "--set gradient_accumulation_steps=4)"
        if spec.set_fallback
        else ""
    )
    config = typer.Option(
        "--config", help=f"A YAML file of settings (the fields of {where}); flags win over it."
    )
    set_ = typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Set any field by its dotted path, the value read as YAML (e.g. --set "
        f"{_example(spec)}); repeatable, applied after the other flags" + trl + ".",
    )
    kw = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("config", kw, default=None, annotation=Annotated[Path | None, config]),
        inspect.Parameter("set_", kw, default=None, annotation=Annotated[list[str] | None, set_]),
    ]


def option_flags(p: inspect.Parameter) -> list[str]:
    """The flags (``--x``, ``--no-x``, ``-o``) of a typer-annotated parameter."""
    option = get_args(p.annotation)[1]
    decls = [option.default] if isinstance(option.default, str) else []
    decls += list(option.param_decls or ())
    if not decls:
        name = p.name.replace("_", "-")
        decls = [f"--{name}/--no-{name}" if _strip(get_args(p.annotation)[0])[0] is bool
                 else f"--{name}"]  # fmt: skip
    return [flag.strip() for decl in decls for flag in decl.split("/") if flag.strip()]


def parameters(spec: ConfigFlags) -> list[inspect.Parameter]:
    """Every option this command derives from ``spec``: ``--config``, ``--set``, one per
    field, then the extras'. Raises ``ValueError`` when two of them share a name."""
    params = _common_params(spec) + [_option(spec, leaf, kind) for leaf, kind in flagged(spec)]
    for fn in spec.extras:
        params += _extra_params(fn)
    known = {leaf.dotted for leaf in leaves(spec.cls)}
    for dotted in [*spec.names, *spec.skip]:
        if dotted not in known:
            raise ValueError(f"{spec.cls.__name__}: no field {dotted!r} to name or skip")
    seen: dict[str, str] = {}
    for p in params:
        for flag in option_flags(p):
            if seen.setdefault(flag, p.name) != p.name:
                raise ValueError(f"{spec.cls.__name__}: {flag} is both {seen[flag]} and {p.name}")
    return params


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(data.get(key), dict):
            data[key] = {}
        data = data[key]
    data[path[-1]] = value


def merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``; mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _flag_value(leaf: Leaf, value: Any) -> Any:
    inner, nullable = _strip(leaf.info.annotation)
    if isinstance(value, tuple) and get_origin(inner) is list:
        value = list(value)
    union = get_origin(inner) in (typing.Union, types.UnionType)
    if union and isinstance(value, list) and len(value) == 1 and str in get_args(inner):
        return value[0]  # `list[str] | str`: one value is the string itself (all-linear)
    if value == "none" and nullable:
        return None
    return value


def flag_overrides(spec: ConfigFlags, ctx: typer.Context, values: dict[str, Any]) -> dict:
    """The settings the user gave as flags (not those left at their defaults), nested.

    ``none`` clears a field that may be null; given to a field of a group that may be null
    (``--policy none``), it clears the group.
    """
    data: dict[str, Any] = {}
    cleared: list[tuple[str, ...]] = []
    for leaf, _ in flagged(spec):
        value = values.pop(leaf.param)
        source = ctx.get_parameter_source(leaf.param)
        if getattr(source, "name", None) != "COMMANDLINE":  # typer vendors its own click
            continue
        value = _flag_value(leaf, value)
        if value == "none" and leaf.in_nullable_group:
            cleared.append(leaf.path[:-1])
        else:
            _put(data, leaf.path, value)
    for group in cleared:
        _put(data, group, None)
    for fn in spec.extras:
        given = {p.name: values.pop(p.name) for p in _extra_params(fn)}
        data = merge(data, fn(**given))
    return data


def set_overrides(spec: ConfigFlags, items: list[str] | None) -> list[dict[str, Any]]:
    """Each ``--set key=value`` as a nested mapping, in order."""
    out = []
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CaiError(f"--set {item!r}: write key=value, e.g. --set seed=1")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise CaiError(f"--set {item!r}: the value is not YAML: {e}") from None
        path = tuple(key.split("."))
        if spec.set_fallback and path[0] not in spec.cls.model_fields:
            path = (spec.set_fallback, key)
        data: dict[str, Any] = {}
        _put(data, path, value)
        out.append(data)
    return out


def build(spec: ConfigFlags, path: Path | None, layers: list[dict[str, Any]]) -> CaiConfig:
    """The config: the command's defaults, the YAML at ``path``, then each command-line
    layer in order. An error names its field, and the file when the file set it."""
    data: dict[str, Any] = copy.deepcopy(dict(spec.defaults))
    if path is not None:
        data = merge(data, read_yaml(path))
    given = set()
    for layer in layers:
        data = merge(data, layer)
        given |= set(layer)
    try:
        return spec.cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = err["loc"]
        source = str(path) if path is not None and not (loc and loc[0] in given) else None
        what = first_error(e) if loc else err["msg"].removeprefix("Value error, ")
        raise CaiError(f"{source or 'command line'}: {what}") from None


CAPTURE: ContextVar[list[CaiConfig] | None] = ContextVar("cai_capture", default=None)
"""While set (``parse_only``), commands append the config they built and do not run."""


@contextlib.contextmanager
def parse_only() -> Iterator[list[CaiConfig]]:
    """Within this block, a config command builds its config, appends it to the list
    yielded, and returns without running."""
    captured: list[CaiConfig] = []
    token = CAPTURE.set(captured)
    try:
        yield captured
    finally:
        CAPTURE.reset(token)


def config_command(spec: ConfigFlags) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Turn ``body(cfg, **own)`` into a typer command: its own options (after ``cfg``),
    then ``--config``, ``--set``, one option per field and the extras'. The command
    builds ``cfg`` from them and calls ``body``; a group's callback does nothing when a
    subcommand runs."""

    def wrap(body: Callable[..., None]) -> Callable[..., None]:
        own = list(inspect.signature(body, eval_str=True).parameters.values())[1:]
        ctx = inspect.Parameter(CTX, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        params = [ctx, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own)]
        params += parameters(spec)
        clash = {p.name for p in own} & {p.name for p in params[len(own) + 1 :]}
        if clash:
            raise ValueError(f"{body.__name__}: options {sorted(clash)} are also fields")

        def command(**kw: Any) -> None:
            context = kw.pop(CTX)
            if context.invoked_subcommand:
                return
            path, sets = kw.pop("config"), kw.pop("set_")
            flags = flag_overrides(spec, context, kw)
            cfg = build(spec, path, [flags, *set_overrides(spec, sets)])
            captured = CAPTURE.get()
            if captured is not None:
                captured.append(cfg)
                return
            body(cfg, **kw)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__doc__ = body.__doc__
        command.__name__ = body.__name__
        command.__qualname__ = body.__qualname__
        command.__module__ = body.__module__
        return command

    return wrap
