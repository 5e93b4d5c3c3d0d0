"""``qmae classifier train``: the ResNet18 digit classifier behind every accuracy, trained and cached."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..options import DataOptions, Options, OutputOptions, add_flags, count, option
from .base import Parser


@dataclass(frozen=True)
class ClassifierTrainOptions(Options):
    """``qmae classifier train``'s own options."""

    epochs: int | None = option(
        None, "passes over the training images (default: ClassifierOptions.epochs, the cached one)", parse=count
    )
    force: bool = option(False, "train again even if cached")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("classifier", help="the ResNet18 digit classifier (train / cache)")
    actions = parser.add_subparsers(dest="classifier_command", required=True, parser_class=Parser)
    train = actions.add_parser(
        "train",
        help="train the classifier on the training split and cache it",
        description="Train ResNet18 (16x16, 1 channel, no first max-pool) and cache its weights.",
    )
    add_flags(train, DataOptions, only=("data_dir", "dataset"))
    add_flags(train, ClassifierTrainOptions)
    add_flags(train, OutputOptions, only=("no_progress",))
    train.set_defaults(handler=run, wraps_errors=False)


def run(args: argparse.Namespace) -> int:
    from ..classifier import ClassifierOptions, accuracy, cached_classifier, labels_of
    from ..datasets import load_dataset

    data, opts = DataOptions.from_args(args), ClassifierTrainOptions.from_args(args)
    train_set = load_dataset(data.dataset, "train", root=data.data_dir)
    test_set = load_dataset(data.dataset, "test", root=data.data_dir)
    options = ClassifierOptions() if opts.epochs is None else ClassifierOptions(epochs=opts.epochs)
    progress = OutputOptions.from_args(args).progress
    model, path = cached_classifier(train_set, options, progress=progress, force=opts.force)
    acc, err = accuracy(model, test_set.images, labels_of(test_set))
    print(
        f"ResNet18 accuracy on {len(test_set.images)} clean test images: {100 * acc:.2f} % ± {100 * err:.2f} ({path})"
    )
    return 0
