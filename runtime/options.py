"""What a hardware job is asked to do: :class:`SubmitOptions`, one frozen type, and the named
:data:`PROFILES` as instances of it.

Each field is declared once (type, default, allowed values, help); ``qmae submit``'s flags, the
``options`` of a job record and ``submit(...)``'s keywords come from it. A profile is a starting
point: ``PROFILES["best"].replace(shots=8192)`` overrides one field.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..circuits.features import FEATURE_KINDS
from ..circuits.fidelity import VARIANTS
from ..options import OptionError, Options, data_dir_option, option
from .mitigation import EXTRAPOLATIONS, parse_scales

__all__ = ["SubmitOptions", "PROFILES", "CDR_TARGETS", "MAX_EMBEDDING_LAYERS", "SIMULATOR_METHODS"]

CDR_TARGETS = ("ran", "full")
SIMULATOR_METHODS = ("automatic", "statevector", "density_matrix")  # Aer's, for a local (fake or aer) backend
MAX_EMBEDDING_LAYERS = 64  # 64 (n - 1) CNOTs already decohere on any device; more is a typo, not a request


@dataclass(frozen=True)
class SubmitOptions(Options):
    """Everything ``qmae submit`` asks of a job besides the run and the backend."""

    images: int = option(4, "the first N test images", minimum=1, metavar="N")
    shots: int = option(4096, "shots per image", minimum=1, metavar="N")
    variant: str | None = option(
        None,
        "fidelity circuit (default: postselect for a run trained with --objective postselect, else the profile's, "
        "else reset); postselect and postselect_flag measure the trash and score the shots where it reads 0",
        choices=VARIANTS,
    )
    reconstruct: bool = option(
        False,
        "sample the reconstruction circuit instead (the data qubits measured; for a run trained with --objective "
        "postselect, only the shots whose trash reads 0)",
    )
    features: bool = option(
        False,
        "sample the latent features instead: Pauli observables on the latent qubits after the encoder (those of qmae "
        "probe), measured in the bases that cover them; qmae fetch returns them with standard errors",
    )
    feature_kind: str = option(
        "pauli2", "with --features: pauli2 (1- and 2-local) or pauli1 (1-local, 3 bases)", choices=FEATURE_KINDS
    )
    masked_features: bool = option(
        False, "with --features: the features of the masked images (patch filled as the model fills it), not the clean"
    )
    dynamical_decoupling: bool = option(False, "dynamical decoupling (real hardware)", flag="--dd")
    twirling: bool = option(False, "Pauli twirling of gates and measurements")
    optimization_level: int = option(3, "transpiler optimization level", choices=(0, 1, 2, 3))
    seed: int | None = option(0, "simulator seed in local mode", minimum=0, maximum=2**62)
    simulator_method: str = option(
        "automatic",
        "Aer's simulation method in local mode (a fake device or aer): density_matrix samples every shot of a "
        "circuit without mid-circuit measurements from one noisy run instead of one trajectory per shot (deep "
        "circuits, many shots: --variant postselect_flag; docs/hardware.md)",
        choices=SIMULATOR_METHODS,
    )
    data_dir: str | None = data_dir_option()
    embedding_layers: int | None = option(
        None,
        "the approximate ladder embedding with L layers of n-1 CNOTs (default: the run's own, the exact embedding "
        "unless it was fine-tuned with one)",
        minimum=1,
        maximum=MAX_EMBEDDING_LAYERS,
        metavar="L",
    )
    readout_mitigation: bool = option(
        False,
        "correct the counts with mthree's readout calibration (balanced method; its circuits run as a second job in "
        "the same Batch)",
    )
    calibration_shots: int | None = option(
        None, "shots of the readout calibration (default: mthree's own, min(max_shots, 10000))", minimum=1, metavar="N"
    )
    zne: tuple[int, ...] | None = option(
        None,
        "zero-noise extrapolation by folding two-qubit gates at these odd scales, e.g. 1,3",
        metavar="SCALES",
        parse=parse_scales,
    )
    extrapolation: str = option("exponential", "the ZNE fit", choices=EXTRAPOLATIONS)
    cdr: int | None = option(
        None,
        "learned mitigation: N training circuits (training-split images) in the same PUB fit a line from estimate to "
        "exact value",
        minimum=3,
        metavar="N",
    )
    cdr_target: str = option(
        "ran",
        "the CDR regression target: the exact values of the circuits that ran, or of the full embedding",
        choices=CDR_TARGETS,
    )
    profile: str | None = option(None, "the profile these options started from (what a job record keeps)", cli=False)

    # what a job record holds as its own fields, not in its "options" object
    RECORD_FIELDS = ("images", "shots", "variant", "reconstruct", "data_dir")

    def _check(self) -> None:
        if self.reconstruct and (self.zne or self.cdr):
            raise OptionError("{0} and {1} apply to fidelity circuits; drop them with {2}", "zne", "cdr", "reconstruct")
        clash = [name for name in ("zne", "cdr", "reconstruct", "variant") if getattr(self, name)]
        if self.features and clash:
            names = ", ".join(f"{{{k + 1}}}" for k in range(len(clash)))
            raise OptionError(
                "{0} samples its own circuit; drop " + names + " (fidelity and reconstruction circuits only)",
                "features",
                *clash,
            )
        for name in ("masked_features", "feature_kind"):
            if getattr(self, name) != getattr(SubmitOptions, name) and not self.features:
                raise OptionError("{0} says what {1} measures; add {1}", name, "features")

    def record_options(self, profile: str | None = None) -> dict[str, Any]:
        """The ``options`` object a job record file holds: how to run and to score the job (the
        images, shots and variant are the record's own fields), with the profile it started from."""
        out = self.to_dict()
        for key in self.RECORD_FIELDS:  # features stays: how to score
            out.pop(key)
        return {**out, "profile": profile if profile is not None else self.profile}

    @classmethod
    def from_record(
        cls, options: Mapping[str, Any], *, images: int, shots: int, variant: str, data_dir: str | None, where: str
    ) -> SubmitOptions:
        """A job record's options, typed and checked: its ``options`` object (a record of any version:
        options it predates take their defaults) with the record's own fields filled in.

        Raises:
            OptionError: an unknown option or a bad value, named as ``<where>.<key>``.
        """
        if not isinstance(options, Mapping):
            raise OptionError(f"{where} must be a JSON object, got {type(options).__name__}")
        own: dict[str, Any] = {"images": images, "shots": shots, "data_dir": data_dir}
        own["reconstruct"] = variant.startswith("reconstruction")
        own["variant"] = variant if variant in VARIANTS and not options.get("features") else None
        return cls.from_dict({**options, **own}, where=where)

    # a record's options were a dict before they were typed: scripts that read them as one still work
    def __getitem__(self, key: str) -> Any:
        warnings.warn(
            f"record.options[{key!r}] is now the attribute record.options.{key}", DeprecationWarning, stacklevel=2
        )
        return self.record_options()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.record_options()

    def get(self, key: str, default: Any = None) -> Any:
        """Deprecated: the attribute (``record.options.shots``)."""
        warnings.warn(f"record.options.get({key!r}) is now record.options.{key}", DeprecationWarning, stacklevel=2)
        return self.record_options().get(key, default)


class _Profiles(dict[str, SubmitOptions]):
    """The named :class:`SubmitOptions` presets (``--profile NAME``): ``best`` is the configuration with
    the lowest error measured on ``fake_fez`` (docs/hardware.md); ``PROFILES["best"].replace(shots=8192)``
    changes one field."""


PROFILES: dict[str, SubmitOptions] = _Profiles(
    {
        # chosen from the measured table in docs/hardware.md (benchmarks/hardware.py)
        # (line encoder run: 266 two-qubit gates on FakeFez, mean absolute error 0.036); ZNE added nothing on top of CDR
        "best": SubmitOptions(
            variant="compute_uncompute", embedding_layers=16, readout_mitigation=True, cdr=16, cdr_target="full"
        ),
    }
)
