"""Data: the embedded MNIST subset, image-folder and zip datasets, preparation, augmentation."""

from .augment import Augment
from .datasets import ImageFolderDataset, MNISTDataset, ZipDataset, open_dataset
from .mnist import balanced_test_indices, load_mnist
from .prepare import prepare_data

__all__ = [
    "Augment",
    "ImageFolderDataset",
    "MNISTDataset",
    "ZipDataset",
    "balanced_test_indices",
    "load_mnist",
    "open_dataset",
    "prepare_data",
]
