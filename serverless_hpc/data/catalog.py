"""What the Fashion-MNIST files hold: names, checksums, shapes, classes. No numpy here.

Specs size their inputs from these facts without loading the reader, so the driver stays
light; :mod:`serverless_hpc.data.fashion_mnist` checks every file against the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Split = Literal["train", "test"]
SPLITS: Final[tuple[Split, ...]] = ("train", "test")
NUM_CLASSES: Final = 10
CLASS_NAMES: Final = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True, slots=True)
class IdxFile:
    """One canonical file: its name, published md5 and the array shape it must hold."""

    name: str
    md5: str
    shape: tuple[int, ...]


FILES: Final[dict[Split, tuple[IdxFile, IdxFile]]] = {
    "train": (
        IdxFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", (60000, 28, 28)),
        IdxFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", (60000,)),
    ),
    "test": (
        IdxFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", (10000, 28, 28)),
        IdxFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", (10000,)),
    ),
}

#: Images per split, from the canonical files' shapes.
SPLIT_SIZES: Final[dict[Split, int]] = {split: pair[0].shape[0] for split, pair in FILES.items()}
