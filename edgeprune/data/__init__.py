"""Data sources for fine-tuning and calibration: digits, npz files, CIFAR-10 batches and user loaders.

Sources: ``digits`` (scikit-learn 8×8 digits), ``npz:PATH`` (a file with arrays x, y, or a directory with
train.npz and test.npz; ``?limit=N`` and ``?layout=nhwc|nchw`` options), ``cifar10:DIR`` (python pickle batches)
and ``module:function`` / ``path/file.py:function`` returning (train_loader, val_loader) or a DataBundle.
"""

from .arrays import stratified_order, to_nchw
from .augment import augment_batch
from .bundle import BatchTransform, DataBundle, DataError, EpochSampler
from .load import CIFAR_PRETRAINED_NORM, load_data

__all__ = [
    "CIFAR_PRETRAINED_NORM",
    "BatchTransform",
    "DataBundle",
    "DataError",
    "EpochSampler",
    "augment_batch",
    "load_data",
    "stratified_order",
    "to_nchw",
]
