"""The ``qmae`` commands, one module each: its options (declared once, as
:class:`~qmae_qiskit.options.Options` classes), ``register(sub)`` (its parser, every argument
generated from those declarations) and ``run(args)`` (its handler). :mod:`qmae_qiskit.cli` only
registers them and handles their errors."""

from __future__ import annotations

from . import (
    bench,
    circuit,
    classifier,
    evaluate,
    fetch,
    fill_study,
    jobs,
    probe,
    reproduce,
    study,
    submit,
    train,
)

# in `qmae --help`'s order
COMMANDS = (train, evaluate, reproduce, study, fill_study, probe, classifier, circuit, submit, jobs, fetch, bench)

__all__ = ["COMMANDS"]
