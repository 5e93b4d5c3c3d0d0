"""qmae-qiskit: quantum masked autoencoders on Qiskit.

Train on Aer (or the exact batched simulator), run inference on IBM Quantum hardware.
"""

from .model import QAE, QMAE
from .train import TrainConfig, TrainResult, resume, train  # ``qmae_qiskit.train(...)`` is the function

__all__ = ["QMAE", "QAE", "TrainConfig", "TrainResult", "train", "resume"]
__version__ = "0.1.0"
