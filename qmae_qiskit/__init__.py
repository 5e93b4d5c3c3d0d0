"""qmae-qiskit: quantum masked autoencoders on Qiskit.

Train on Aer (or the exact batched simulator), run inference on IBM Quantum hardware. The public
API, re-exported here::

    QMAE, QAE, ModelConfig, build_model,    the model and its architecture (qmae_qiskit.model)
    load_model
    bound_circuit, template                  a model's circuits, bound or parameterized (qmae_qiskit.model_circuits)
    train, resume, TrainConfig, TrainResult  training into a run directory (qmae_qiskit.training)
    OptionError                              a bad option, named as the caller spelled it (qmae_qiskit.options)
    evaluate, evaluate_run, EvalResult       scoring (qmae_qiskit.evaluation)
    EvalReport, PassthroughReport, Metrics   what scoring returns, as named types (qmae_qiskit.results)
    evaluation_masks, data_for_run           a run's masks and data (qmae_qiskit.runs)
    load_dataset, load_mnist, ImageSet       images: MNIST, other datasets, your folders (qmae_qiskit.datasets)

Hardware jobs live in :mod:`qmae_qiskit.runtime`, circuit templates in :mod:`qmae_qiskit.circuits`.
"""

from .data import ImageSet, load_mnist
from .datasets import load_dataset
from .evaluation import EvalResult, evaluate, evaluate_run
from .model import QAE, QMAE, ModelConfig, build_model, load_model
from .model_circuits import bound_circuit, template
from .options import OptionError
from .probe import ProbeResult, probe
from .results import EvalReport, Metrics, PassthroughReport
from .runs import data_for_run, evaluation_masks
from .training import TrainConfig, TrainResult, resume, train

__all__ = [
    "QMAE",
    "QAE",
    "ModelConfig",
    "build_model",
    "load_model",
    "bound_circuit",
    "template",
    "OptionError",
    "TrainConfig",
    "TrainResult",
    "train",
    "resume",
    "EvalResult",
    "EvalReport",
    "PassthroughReport",
    "Metrics",
    "evaluate",
    "evaluate_run",
    "probe",
    "ProbeResult",
    "evaluation_masks",
    "data_for_run",
    "ImageSet",
    "load_dataset",
    "load_mnist",
]
__version__ = "0.1.0"
