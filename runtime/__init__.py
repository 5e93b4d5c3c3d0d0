"""Everything that talks to IBM Quantum (or its local testing mode).

Installed as ``qmae_qiskit.runtime``. Hardware jobs are the subject of a later milestone; today the
fidelity circuits for hardware live in :mod:`qmae_qiskit.circuits.fidelity`
(``"reset"``, ``"destructive"``, ``"compute_uncompute"`` variants) and
:meth:`qmae_qiskit.QMAE.circuit` binds them for one image.
"""
