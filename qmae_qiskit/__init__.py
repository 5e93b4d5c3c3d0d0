"""qmae-qiskit: quantum masked autoencoders on Qiskit.

Train on Aer (or the exact batched simulator), run inference on IBM Quantum hardware.
"""

from .model import QAE, QMAE

__all__ = ["QMAE", "QAE"]
__version__ = "0.1.0"
