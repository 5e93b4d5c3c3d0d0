"""What the evaluation returns, as named types: an :class:`EvalReport` per model and a
:class:`PassthroughReport` per classical fill, their metrics grouped as :class:`Metrics`.

Each metric is a :class:`~qmae_qiskit.metrics.MetricSummary` (mean and standard error), read as an
attribute: ``report.own.fidelity.mean``, ``report.composite.masked_psnr``,
``report.passthrough["linear_fill"].metrics.masked_psnr``. ``to_json()`` writes the flat keys every
earlier version wrote (``fidelity``, ``fidelity_stderr``, ``composite_masked_psnr``, ``oracle_ssim``,
``postselected_fidelity``, ``passthrough``: ...), so committed ``results.json`` files and scripts that
read them keep working; reading a report with ``report["fidelity"]`` still works, with a
deprecation warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .metrics import MetricSummary

__all__ = ["Metrics", "PassthroughReport", "EvalReport", "JsonValue"]

JsonValue = Any  # what json.dumps takes: the flat dicts to_json() returns


@dataclass(frozen=True)
class Metrics:
    """Named metrics of one procedure or one fill, each a :class:`~qmae_qiskit.metrics.MetricSummary`.

    ``metrics.masked_psnr`` (an attribute) or ``metrics["masked_psnr"]``; ``"accuracy" in metrics``
    says whether it was computed (accuracy needs labels and a classifier; ``keep_probability`` a model
    that discards shots).
    """

    values: Mapping[str, MetricSummary] = field(default_factory=dict)

    def __getattr__(self, name: str) -> MetricSummary:
        if name.startswith("__") or name == "values":
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"no metric {name!r} here; computed: {', '.join(self.values) or 'none'}") from None

    def __getitem__(self, name: str) -> MetricSummary:
        return self.values[name]

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def flat(self, prefix: str = "") -> dict[str, float]:
        """``{prefix + name: mean, prefix + name + "_stderr": stderr}`` (the JSON keys)."""
        out: dict[str, float] = {}
        for name, summary in self.values.items():
            out[f"{prefix}{name}"], out[f"{prefix}{name}_stderr"] = summary.mean, summary.stderr
        return out


class _LegacyMapping:
    """Reading a report as the dict earlier versions returned: ``report["fidelity"]`` (deprecated)."""

    def to_json(self) -> dict[str, JsonValue]:
        raise NotImplementedError

    def _legacy(self) -> dict[str, JsonValue]:
        out = self.to_json()
        per_image = getattr(self, "per_image", None)
        if per_image is not None:
            out["per_image"] = per_image
        return out

    def __getitem__(self, key: str) -> JsonValue:
        warnings.warn(
            f"{type(self).__name__}[{key!r}]: read the report's attributes (or .to_json()[{key!r}])",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._legacy()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._legacy()

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        """Deprecated: the attributes, or ``to_json().get(key)``."""
        return self._legacy().get(key, default)


@dataclass(frozen=True)
class PassthroughReport(_LegacyMapping):
    """A *pass-through*: a filled input (zeros, the token, the mean image, the linear fill) scored
    as if it were the output, on the same masks as the model.

    Attributes:
        images: how many images.
        metrics: ``fidelity``, the image metrics with ``masked_psnr`` and ``masked_cosine_similarity``,
            and ``accuracy`` with a classifier.
        per_image: with ``per_image=True``, the per-image values (``correct`` for the accuracy).
    """

    images: int
    metrics: Metrics
    per_image: Mapping[str, torch.Tensor] | None = None

    def to_json(self) -> dict[str, JsonValue]:
        """The flat keys: ``images``, ``fidelity``, ``fidelity_stderr``, ..."""
        return {"images": self.images, **self.metrics.flat()}

    def to_row(self) -> dict[str, JsonValue]:
        """:meth:`to_json` with the per-image tensors under ``per_image`` (a study's row, paired later)."""
        return self._legacy()


@dataclass(frozen=True)
class EvalReport(_LegacyMapping):
    """Every metric of one model on held-out images under one set of masks.

    Attributes:
        images: how many images.
        own: the model's own procedure (its ``objective``): ``fidelity`` (post-selected: of the kept
            shots), ``input_fidelity`` (the filled input's), ``fidelity_gain`` (paired per image),
            ``keep_probability`` and ``fidelity_per_shot`` where shots are discarded, the image
            metrics of the reconstruction (visible-pixel scaling: ``cosine_similarity``, ``ssim``,
            ``ssim_torchmetrics``, ``psnr``, ``masked_psnr``, ``masked_cosine_similarity``), and with a
            classifier ``accuracy`` and ``input_accuracy``.
        composite: the composite (the visible pixels kept, the model's patch pasted in):
            ``fidelity``, the image metrics, ``accuracy``.
        oracle: the image metrics with the oracle scaling (``None`` with ``extras=False``).
        other: the other trash procedure's metrics, never mixed into ``own`` (``None`` with
            ``extras=False``); :attr:`other_procedure` names it.
        other_procedure: ``"postselected"`` for a reset model, ``"reset"`` for a post-selected one.
        passthrough: ``{fill name: PassthroughReport}`` on the same masks (:func:`qmae_qiskit.evaluate_run`).
        per_image: with ``per_image=True``, the model's per-image values (for paired comparisons).
        objective, split, source, embedding_layers: the run's procedure and data
            (:func:`qmae_qiskit.evaluate_run`).
        linear_fill_alpha: the ridge penalty of the linear fill, where it is defined.
        accuracy_note: why there is no accuracy (an unlabelled dataset).
    """

    images: int
    own: Metrics
    composite: Metrics
    other_procedure: str
    oracle: Metrics | None = None
    other: Metrics | None = None
    passthrough: Mapping[str, PassthroughReport] = field(default_factory=dict)
    per_image: Mapping[str, torch.Tensor] | None = None
    objective: str | None = None
    split: str | None = None
    source: str | None = None
    embedding_layers: int | None = None
    linear_fill_alpha: float | None = None
    accuracy_note: str | None = None

    @property
    def best_passthrough_fidelity(self) -> float | None:
        """The highest fidelity of a pass-through row (``None`` without them)."""
        return max((row.metrics.fidelity.mean for row in self.passthrough.values()), default=None)

    def with_run(self, **context: Any) -> EvalReport:
        """A copy with the run's context or pass-through rows added."""
        from dataclasses import replace

        return replace(self, **context)

    def to_row(self) -> dict[str, JsonValue]:
        """:meth:`to_json` with the per-image tensors under ``per_image`` (a study's row, paired later)."""
        return self._legacy()

    def to_json(self) -> dict[str, JsonValue]:
        """The flat keys earlier versions returned (and committed ``results.json`` files hold):
        the own metrics at the top level, ``composite_*``, ``oracle_*``, ``reset_*`` or
        ``postselected_*``, ``passthrough``, and the run's context where known."""
        out: dict[str, JsonValue] = {"images": self.images, **self.own.flat(), **self.composite.flat("composite_")}
        if self.other is not None:
            out.update(self.other.flat(f"{self.other_procedure}_"))
        if self.oracle is not None:
            out.update(self.oracle.flat("oracle_"))
        if self.passthrough:
            out["passthrough"] = {name: row.to_json() for name, row in self.passthrough.items()}
            out["best_passthrough_fidelity"] = self.best_passthrough_fidelity
        for key in ("objective", "split", "source"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.objective is not None:  # evaluate_run always says which embedding it scored
            out["embedding_layers"] = self.embedding_layers
        if self.linear_fill_alpha is not None:
            out["linear_fill_alpha"] = self.linear_fill_alpha
        if self.accuracy_note is not None:
            out["accuracy_note"] = self.accuracy_note
        return out


@dataclass(frozen=True)
class VerdictRow:
    """A verdict as a study reports it: the paired 95 % interval of a difference and its sentence.

    Attributes:
        sentence: the claim and what can be said (**yes**, **no: the reverse holds**, **undecided**).
        mean, low, high: the mean difference and its interval.
        samples: how many pairs (seeds, or images for one seed).
        holds: ``True`` / ``False`` where the interval excludes 0, ``None`` where it is undecided.
    """

    sentence: str
    mean: float
    low: float
    high: float
    samples: int
    holds: bool | None

    @classmethod
    def from_json(cls, row: Mapping[str, JsonValue]) -> VerdictRow:
        """From a results.json verdict (``holds`` derived from the interval where not written)."""
        low, high = float(row["low"]), float(row["high"])
        holds = row.get("holds", (low > 0) if (low > 0 or high < 0) else None)
        return cls(str(row["sentence"]), float(row["mean"]), low, high, int(row["samples"]), holds)


@dataclass(frozen=True)
class StudyResult(_LegacyMapping):
    """What ``qmae study``, ``qmae reproduce`` or ``qmae fill-study`` found, as written to its
    results file (``to_json()``: that file's content, every key as before).

    Attributes:
        study: ``"study"``, ``"reproduce"`` or ``"fill-study"``.
        verdicts: the verdicts, each decided by a paired interval.
        chosen: ``fill-study``: the configuration chosen on held-out training images.
        ceiling_verdict: ``fill-study``: the chosen circuit against its ceiling.
        summary: ``study`` / ``reproduce``: per configuration, each metric's mean over seeds (and
            its spread): ``summary["qmae-25"]["masked_psnr"]["mean"]``.
        passthrough: the pass-through rows (fills) on the same masks, as ``to_json()`` writes them.
        document: the whole results file's content.
    """

    study: str
    verdicts: tuple[VerdictRow, ...]
    document: Mapping[str, JsonValue]
    chosen: str | None = None
    ceiling_verdict: VerdictRow | None = None
    summary: Mapping[str, JsonValue] = field(default_factory=dict)
    passthrough: Mapping[str, JsonValue] = field(default_factory=dict)

    @classmethod
    def from_json(cls, study: str, document: Mapping[str, JsonValue]) -> StudyResult:
        """The result of a study from its results file's content."""
        ceiling = document.get("ceiling")
        return cls(
            study=study,
            verdicts=tuple(VerdictRow.from_json(v) for v in document.get("verdicts", ())),
            document=document,
            chosen=document.get("chosen"),
            ceiling_verdict=VerdictRow.from_json(ceiling["verdict"]) if ceiling else None,
            summary=document.get("summary", {}),
            passthrough=document.get("passthrough", {}),
        )

    def to_json(self) -> dict[str, JsonValue]:
        """The results file's content."""
        return dict(self.document)
