"""Data: the embedded MNIST subset, image decoding, image-folder and zip datasets, preparation,
augmentation."""

from .augment import Augment
from .datasets import ImageFolderDataset, MNISTDataset, ZipDataset, open_dataset
from .images import IMAGE_SUFFIXES, DecodedImage, ImageError, decode_image
from .mnist import balanced_indices, load_mnist
from .prepare import PrepareReport, prepare_data

__all__ = [
    "IMAGE_SUFFIXES",
    "Augment",
    "DecodedImage",
    "ImageError",
    "ImageFolderDataset",
    "MNISTDataset",
    "PrepareReport",
    "ZipDataset",
    "balanced_indices",
    "decode_image",
    "load_mnist",
    "open_dataset",
    "prepare_data",
]
