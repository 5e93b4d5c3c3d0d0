"""One declaration per option: its type, default, allowed values and help, written once.

A configuration is a frozen dataclass whose fields are made with :func:`option`. Everything else
about an option is derived from that one declaration:

- validation (:meth:`Options.validate`): the type (``bool`` is not an ``int``; floats are finite),
  the allowed values and the range, then the class's own cross-field rules (``_check``);
- the command line (:func:`add_flags`): ``--field-name`` with its type, choices and help, the
  default appended to the help from the declaration;
- JSON (:meth:`Options.to_dict`, :meth:`Options.from_dict`): what ``config.json`` and job records
  hold, read back with every key and value checked, the file and the key named on error.

Errors name the option the way the caller spelled it (:class:`OptionError`): ``--lr`` on the
command line, ``lr`` in Python, ``options.lr`` in a file.

The configurations: :class:`qmae_qiskit.model.ModelConfig` (the architecture),
:class:`qmae_qiskit.training.TrainConfig` (nests it; the loop's own options) and
:class:`qmae_qiskit.runtime.SubmitOptions` (a hardware job).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

__all__ = [
    "OptionError",
    "OptionSpec",
    "Options",
    "option",
    "add_flags",
    "flag_name",
    "count",
    "FLAG",
    "KEYWORD",
    "DataOptions",
    "OutputOptions",
]

FLAG, KEYWORD = "flag", "keyword"

# fields whose command-line flag is not --field-name (registered by option(flag=...))
_FLAGS: dict[str, str] = {}


def flag_name(name: str) -> str:
    """The command-line flag of option ``name`` (``lr`` -> ``--lr``, ``batch_size`` -> ``--batch-size``)."""
    return _FLAGS.get(name) or "--" + name.replace("_", "-")


def spell(name: str, style: str) -> str:
    """Option ``name`` in a caller's vocabulary: ``--batch-size`` (``flag``), ``batch_size`` (``keyword``)."""
    if style == FLAG:
        return flag_name(name)
    if style == KEYWORD:
        return name
    return f"{style}.{name}"  # a file's key path, e.g. options.lr


class OptionError(ValueError):
    """A bad option value, named in the caller's vocabulary.

    ``message`` holds ``{0}``, ``{1}``, ... where the option names go; ``str()`` spells them as
    Python keywords (``lr``), :meth:`render` as flags (``--lr``) or file keys (``options.lr``).
    """

    def __init__(self, message: str, *names: str) -> None:
        self.message, self.names = message, names
        super().__init__(self.render(KEYWORD))

    def render(self, style: str) -> str:
        """The message with the option names spelled for ``style`` (:data:`FLAG`, :data:`KEYWORD`
        or a key path such as ``"options"``)."""
        # only {0}, {1}, ... are placeholders: other braces (a value's repr, a path) stay as they are
        return re.sub(r"\{(\d+)\}", lambda m: spell(self.names[int(m.group(1))], style), self.message)


@dataclass(frozen=True)
class OptionSpec:
    """What an option declares besides its type and default (see :func:`option`)."""

    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None  # strictly greater than
    below: float | None = None  # strictly less than
    metavar: str | None = None
    cli: bool = True
    parse: Callable[[Any], Any] | None = None  # a flag's text or a JSON value -> the field's value
    show_default: bool = True
    positional: bool = False  # a command's argument (RUN_DIR), not a --flag
    short: str | None = None  # a one-letter alias (-v)
    repeat: bool = False  # the flag may be given several times; the value is a tuple
    exclusive: str | None = None  # exactly one of the options sharing this group name must be given
    required: bool = False  # a flag the command cannot run without (--out, --backend)
    hidden: bool = False  # left out of --help (internal flags)


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    metavar: str | None = None,
    flag: str | None = None,
    cli: bool = True,
    parse: Callable[[Any], Any] | None = None,
    show_default: bool = True,
    positional: bool = False,
    short: str | None = None,
    repeat: bool = False,
    exclusive: str | None = None,
    required: bool = False,
    hidden: bool = False,
) -> Any:
    """A dataclass field that is an option.

    Args:
        default: its default (``None``: "not set"; the field's type then allows ``None``).
        help: one line for ``--help`` (the default is appended from ``default``).
        choices: the allowed values.
        minimum, maximum: inclusive bounds; ``above``, ``below``: exclusive ones.
        metavar: the flag's placeholder in ``--help``.
        flag: the command-line flag, if not ``--field-name``.
        cli: ``False`` for a Python-only option (no flag).
        parse: converts a flag's text or a JSON value into the field's value (e.g. ``"8x8"`` ->
            ``(8, 8)``); raises ``ValueError`` for text that is not one.
        show_default: append ``(default ...)`` to the help.
        positional: a command's positional argument (``RUN_DIR``) instead of a ``--flag``.
        short: a one-letter alias of the flag (``-v``).
        repeat: the flag may be given several times (``--variant a --variant b``): a tuple.
        exclusive: a group name: exactly one of the options that share it must be given.
        required: the flag must be given (``--out``, ``--backend``).
        hidden: leave the flag out of ``--help`` (internal flags).
    """
    spec = OptionSpec(
        help, choices, minimum, maximum, above, below, metavar, cli, parse, show_default, positional, short, repeat,
        exclusive, required, hidden,
    )  # fmt: skip
    return dataclasses.field(default=default, metadata={"option": spec, "flag": flag})


def count(value: Any) -> int:
    """A whole number >= 1, from a flag's text or a Python int (``--limit -5`` and ``--seeds 0`` are
    refused while the command line is parsed, before anything runs)."""
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"must be a whole number >= 1, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a whole number >= 1, got {value!r}")
    return value


_DECLARED: dict[type, tuple[tuple[dataclasses.Field, OptionSpec, Any], ...]] = {}


def _declared(cls: type) -> tuple[tuple[dataclasses.Field, OptionSpec, Any], ...]:
    """``(field, spec, type hint)`` of ``cls``'s options, read once per class; its own flag names
    are registered for :func:`flag_name` on the way."""
    if cls in _DECLARED:
        return _DECLARED[cls]
    hints = typing.get_type_hints(cls)
    declared = []
    for f in dataclasses.fields(cls):
        if "option" in f.metadata:
            declared.append((f, f.metadata["option"], hints[f.name]))
            if f.metadata.get("flag"):
                _FLAGS[f.name] = f.metadata["flag"]
    _DECLARED[cls] = tuple(declared)
    return _DECLARED[cls]


def _base_type(hint: Any) -> tuple[Any, bool]:
    """``int | None`` -> ``(int, True)``; ``float`` -> ``(float, False)``."""
    args = typing.get_args(hint)
    if args and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        return (rest[0] if len(rest) == 1 else typing.Union[rest], True)  # noqa: UP007 (a runtime Union)
    return hint, False


def _describe(kind: Any, spec: OptionSpec) -> str:
    """``a positive integer``, ``a number >= 0``, ``one of a, b``, ..."""
    if spec.choices is not None:
        return "one of " + ", ".join(str(c) for c in spec.choices)
    if kind not in (int, float):
        return {str: "a string", bool: "true or false"}.get(kind, "valid")
    noun = "integer" if kind is int else "number"
    lower = spec.minimum if spec.minimum is not None else spec.above
    if (kind is int and spec.minimum == 1) or (kind is float and spec.above == 0):
        words, lower = f"a positive {noun}", None
    else:
        words = f"{'an' if kind is int else 'a'} {noun}"
    bounds = []
    if lower is not None:
        bounds.append(f"{'>=' if spec.minimum is not None else '>'} {lower:g}")
    if spec.maximum is not None:
        bounds.append(f"<= {spec.maximum:g}")
    if spec.below is not None:
        bounds.append(f"< {spec.below:g}")
    return words + (" " + " and ".join(bounds) if bounds else "")


def check_value(name: str, value: Any, hint: Any, spec: OptionSpec) -> None:
    """Type, finiteness, choices and range of one option's value.

    Raises:
        OptionError: naming the option, what it must be, and what it got.
    """
    kind, optional = _base_type(hint)
    if value is None:
        if optional:
            return
        raise OptionError(f"{{0}} must be {_describe(kind, spec)}, got None", name)
    bad = False
    if kind is bool:
        bad = not isinstance(value, bool)
    elif kind is int:
        bad = isinstance(value, bool) or not isinstance(value, int)
    elif kind is float:
        bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
    elif kind is str:
        bad = not isinstance(value, str)
    if not bad and spec.choices is not None:
        bad = value not in spec.choices
    if not bad and kind in (int, float):
        bad = (
            (spec.minimum is not None and value < spec.minimum)
            or (spec.maximum is not None and value > spec.maximum)
            or (spec.above is not None and not value > spec.above)
            or (spec.below is not None and not value < spec.below)
        )
    if bad:
        raise OptionError(f"{{0}} must be {_describe(kind, spec)}, got {value!r}", name)


OptionsT = TypeVar("OptionsT", bound="Options")


class Options:
    """Mixin of the option dataclasses: validation, JSON in and out, the declared fields."""

    # older names of fields, read from files written by earlier versions: {"tokens": "token"}
    ALIASES: ClassVar[dict[str, str]] = {}

    @classmethod
    def option_fields(cls) -> Iterator[tuple[dataclasses.Field, OptionSpec, Any]]:
        """``(field, spec, type hint)`` of every declared option (nested configurations excluded)."""
        return iter(_declared(cls))

    def __post_init__(self) -> None:
        for f, spec, _ in self.option_fields():
            value = getattr(self, f.name)
            if spec.parse is not None and value is not None:
                try:
                    object.__setattr__(self, f.name, spec.parse(value))
                except (ValueError, TypeError) as exc:
                    raise OptionError(f"{{0}}: {exc}", f.name) from None

    def validate(self) -> None:
        """Check every option, then the rules between them.

        Raises:
            OptionError: the first bad option, named.
        """
        for f, spec, hint in self.option_fields():
            value = getattr(self, f.name)
            if spec.repeat and value is not None:  # a tuple of values, each checked
                kind = typing.get_args(_base_type(hint)[0])[0]
                if not isinstance(value, tuple):
                    raise OptionError(f"{{0}} must be a tuple of values, got {value!r}", f.name)
                for item in value:
                    check_value(f.name, item, kind, spec)
            elif spec.parse is None:
                check_value(f.name, value, hint, spec)
        self._check()

    def check_field(self, name: str) -> None:
        """Check one option's value (type, choices, range).

        Raises:
            OptionError: naming it.
        """
        for f, spec, hint in self.option_fields():
            if f.name == name and spec.parse is None:
                check_value(name, getattr(self, name), hint, spec)

    def _check(self) -> None:
        """Rules between options (subclasses)."""

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready values (tuples as lists)."""

        def plain(value: Any) -> Any:
            if isinstance(value, (tuple, list)):
                return [plain(v) for v in value]
            return value

        return {f.name: plain(getattr(self, f.name)) for f, _, _ in self.option_fields()}

    @classmethod
    def names(cls) -> set[str]:
        """The option names (with the aliases they may be read under)."""
        return {f.name for f, _, _ in cls.option_fields()}

    @classmethod
    def from_dict(cls: type[OptionsT], data: Mapping[str, Any], *, where: str = "options", **extra: Any) -> OptionsT:
        """Build from a JSON object (unknown keys refused, old names read through :attr:`ALIASES`).

        Args:
            data: the object.
            where: how to name a key in errors (``"config.json options"`` -> ``config.json options.lr``).
            extra: further constructor arguments (nested configurations).

        Raises:
            OptionError: an unknown key, or a value of the wrong type or out of range.
        """
        if not isinstance(data, Mapping):
            raise OptionError(f"{where} must be a JSON object, got {type(data).__name__}")
        values = {cls.ALIASES.get(k, k): v for k, v in data.items()}
        unknown = sorted(set(values) - cls.names())
        if unknown:
            raise OptionError(
                f"{where} holds unknown option(s) {unknown} (written by another version of qmae-qiskit?); remove them"
            )
        try:
            made = cls(**values, **extra)
            made.validate()
        except OptionError as exc:
            raise OptionError(exc.render(where)) from None
        return made

    @classmethod
    def from_args(cls: type[OptionsT], args: argparse.Namespace, **extra: Any) -> OptionsT:
        """Build from a parsed command line: the options whose flags :func:`add_flags` added (and
        the user gave; the others keep their defaults), checked.

        Raises:
            OptionError: a bad value or combination, named as the flag (:meth:`OptionError.render`).
        """
        added = getattr(args, _added_key(cls), None)  # the names add_flags gave this command for cls
        given = {
            f.name: getattr(args, f.name)
            for f, _, _ in cls.option_fields()
            if getattr(args, f.name, None) is not None and (added is None or f.name in added)
        }
        given = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}  # a repeated flag's values
        made = cls(**given, **extra)
        made.validate()
        return made

    def replace(self: OptionsT, **changes: Any) -> OptionsT:
        """A copy with ``changes`` (checked when validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type[Options],
    *,
    skip: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
) -> list[str]:
    """Add a flag (or a positional argument) for every command-line option of ``cls``: the one
    place ``qmae``'s arguments are made. Every default is ``None`` (not given), so a caller sees which
    options were given (:meth:`Options.from_args` fills in the declared defaults). Returns the
    option names added.

    A ``bool`` option is a switch; ``choices``, the metavar and the help come from the declaration,
    with the declared default appended to the help; ``repeat`` options append; options sharing an
    ``exclusive`` group become one required mutually exclusive group.

    Args:
        parser: the command's parser or one of its argument groups.
        cls: the options class.
        skip: option names to leave out.
        only: the option names to add (default: all of ``cls``'s command-line options).
    """
    added = []
    groups: dict[str, Any] = {}
    for f, spec, hint in cls.option_fields():
        if not spec.cli or f.name in skip or (only is not None and f.name not in only):
            continue
        kind, _ = _base_type(hint)
        text = spec.help
        if spec.show_default and not spec.positional and f.default not in (None, False, ""):
            shown = "x".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
            text += f" (default {shown})"
        target = parser
        if spec.exclusive is not None:
            if spec.exclusive not in groups:
                groups[spec.exclusive] = parser.add_mutually_exclusive_group(required=True)
            target = groups[spec.exclusive]
        if spec.positional:
            names: tuple[str, ...] = (f.name,)
            kwargs: dict[str, Any] = {"help": text, "metavar": spec.metavar or f.name.upper()}
        else:
            flag = f.metadata.get("flag") or flag_name(f.name)
            names = (spec.short, flag) if spec.short else (flag,)
            kwargs = {"dest": f.name, "default": None, "help": argparse.SUPPRESS if spec.hidden else text}
            if spec.required:
                kwargs["required"] = True
        if kind is bool and not spec.positional:
            kwargs["action"] = "store_true"
        else:
            convert = spec.parse if spec.parse is not None else kind if kind in (int, float) else str
            if spec.repeat:
                kwargs["action"] = "append"
                convert = spec.parse or str
            kwargs["type"] = _named(convert, kind)
            if spec.choices is not None:
                kwargs["choices"] = spec.choices
            if spec.metavar is not None:
                kwargs["metavar"] = spec.metavar
        target.add_argument(*names, **kwargs)
        added.append(f.name)
    before = parser.get_default(_added_key(cls)) or ()
    parser.set_defaults(**{_added_key(cls): (*before, *added)})
    return added


def _added_key(cls: type[Options]) -> str:
    """Where a parsed command line keeps the option names :func:`add_flags` added for ``cls``
    (another class may own a flag of the same name: ``qmae circuit --variant``)."""
    return f"_flags_{cls.__module__}.{cls.__qualname__}"


def _named(convert: Callable[[Any], Any], kind: Any) -> Callable[[str], Any]:
    """argparse names a ``type`` in its error by ``__name__``: 'invalid int value: 'x''."""
    if convert in (int, float, str):
        return convert

    def wrapper(text: str) -> Any:
        try:
            return convert(text)
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return wrapper


DATASET_HELP = (
    "mnist, fashion-mnist, kmnist, emnist-digits, cifar10-gray, or folder:PATH (a directory of image files; class "
    "sub-folders give labels); from Python also tensors or a torch Dataset"
)


def data_dir_option() -> Any:
    """The one declaration of ``--data-dir`` (:class:`DataOptions` and ``TrainConfig`` take it)."""
    return option(
        None,
        "MNIST (or --dataset) in torchvision's layout (default: a run's own source; else $QMAE_DATA_DIR, the "
        "download cache, or the embedded sample)",
        metavar="DIR",
    )


def dataset_option() -> Any:
    """The one declaration of ``--dataset`` (:class:`DataOptions` and ``TrainConfig`` take it)."""
    return option("mnist", DATASET_HELP, metavar="NAME")


@dataclass(frozen=True)
class DataOptions(Options):
    """Where a command's images come from: the options every data-reading command shares."""

    data_dir: str | None = data_dir_option()
    dataset: str = dataset_option()
    limit: int | None = option(None, "the first N test images, class-balanced (default: all)", metavar="N", parse=count)


@dataclass(frozen=True)
class OutputOptions(Options):
    """How a command reports: JSON on stdout, progress bars on stderr."""

    json: bool = option(False, "print one JSON object (and nothing else) on stdout")
    no_progress: bool = option(False, "no progress bars")

    @property
    def progress(self) -> bool:
        """Show progress bars."""
        return not self.no_progress
