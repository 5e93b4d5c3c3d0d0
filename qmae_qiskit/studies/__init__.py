"""The studies built on the core: they train, evaluate and tabulate, and the core never imports
them (``tests/test_architecture.py`` says so).

    reproduce.py    qmae reproduce: the paper's evaluation section and the inpainting table (REPORT.md)
    study.py        qmae study: objective x layers x latent x decoder x token, the ceiling, seeds
    bench.py        qmae bench: every training path timed in one run
    experiments.py  runs over configurations and seeds, summaries, verdicts by paired intervals
    templates/      the Markdown of the reports, filled from the numbers (string.Template)

Import what you need from its module (``from qmae_qiskit.studies.reproduce import reproduce``);
the ``qmae`` commands call them.
"""
