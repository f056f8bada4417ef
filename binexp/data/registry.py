"""Dataset kinds -> (schema, builder). A ``conf/data/*.yaml`` option names its ``kind``; its
``name`` is free (``cifar10`` and ``cifar100`` are both kind ``cifar``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from binexp.data.base import ClassifierData


def _positive(prefix: str, **values) -> None:
    for key, value in values.items():
        if value is None or value <= 0:
            raise ValueError(f"{prefix}.{key} must be > 0, got {value}")


@dataclass
class InMemoryConfig:
    """Options shared by the in-memory image sets (CIFAR, synthetic)."""

    batch_size: int = 128  # global batch: split across DDP ranks
    eval_batch_size: int = 256
    augment: bool = True  # random crop (pad crop_padding) + flip as batched tensor ops on the training device
    crop_padding: int = 4
    # imagenet | half (0.5, 0.5) | cifar (CIFAR-10's own mean/std, BiBench); the RBNN, IR-Net, ReCU
    # and AdaBin codes normalise CIFAR with ImageNet statistics
    normalize: str = "imagenet"
    resident_on_device: bool = True  # on a GPU, keep the uint8 set in GPU memory (no effect on CPU)

    def __post_init__(self) -> None:
        _positive("data", batch_size=self.batch_size, eval_batch_size=self.eval_batch_size)
        if self.normalize not in ("imagenet", "half", "cifar"):
            raise ValueError(f"data.normalize must be imagenet, half or cifar, got {self.normalize!r}")
        if self.crop_padding < 0:
            raise ValueError(f"data.crop_padding must be >= 0, got {self.crop_padding}")

    def loader_kwargs(self) -> dict:
        return {
            k: getattr(self, k)
            for k in ("batch_size", "eval_batch_size", "augment", "crop_padding", "normalize", "resident_on_device")
        }


@dataclass
class CifarConfig(InMemoryConfig):
    """CIFAR-10/100 from the standard python batches, read by binexp itself (binexp/data/cifar.py)."""

    kind: str = "cifar"
    name: str = "cifar10"
    root: str = "data/cifar10"  # folder holding cifar-10-batches-py/ or cifar-100-python/ (or the batches)
    variant: int = 10  # 10 | 100
    download: bool = False  # True: fetch the archive when online
    batch_size: int = 256  # official RBNN CIFAR recipe (global batch; split across DDP ranks)
    eval_batch_size: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variant not in (10, 100):
            raise ValueError(f"data.variant must be 10 or 100, got {self.variant}")


@dataclass
class SyntheticConfig(InMemoryConfig):
    kind: str = "synthetic"
    name: str = "synthetic"
    num_classes: int = 10
    train_size: int = 2048
    val_size: int = 512
    image_size: int = 32
    noise: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(
            "data",
            num_classes=self.num_classes,
            train_size=self.train_size,
            val_size=self.val_size,
            image_size=self.image_size,
        )
        if self.noise < 0:
            raise ValueError(f"data.noise must be >= 0, got {self.noise}")


# the skimage.data photos of data=photocrops, one class each (any loader of skimage.data that returns an
# (H, W) or (H, W, 3) uint8 image works)
PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "rocket",
)


@dataclass
class PhotoCropsConfig(InMemoryConfig):
    """Real photos cut into labelled crops, in memory (binexp/data/photocrops.py): one class per
    photo of scikit-image's bundled samples (``pip install 'binexp[photos]'``). Training crops
    come from the left ``1 - val_fraction`` of each photo, validation crops from the rest."""

    kind: str = "photocrops"
    name: str = "photocrops"
    # skimage.data loader names, one class each (grey photos are replicated to 3 channels)
    photos: list[str] = field(default_factory=lambda: list(PHOTOS))
    train_per_class: int = 480  # 12 x 480 = 5,760 training crops
    val_per_class: int = 120
    image_size: int = 32
    # crop side as a fraction of the photo's shorter side, uniform in [min_scale, max_scale]
    min_scale: float = 0.08
    max_scale: float = 0.35
    val_fraction: float = 0.25  # right-hand share of each photo's width that only validation crops see
    seed: int = 0  # crops, places and mirrors (validation uses seed + 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(
            "data",
            train_per_class=self.train_per_class,
            val_per_class=self.val_per_class,
            image_size=self.image_size,
            min_scale=self.min_scale,
        )
        if not self.photos or len(set(self.photos)) != len(self.photos):
            raise ValueError(f"data.photos must be a non-empty list of distinct names, got {list(self.photos)}")
        if not self.min_scale <= self.max_scale <= 1:
            raise ValueError(
                f"data.min_scale <= data.max_scale <= 1 is needed, got {self.min_scale} and {self.max_scale}"
            )
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass
class MNISTConfig(InMemoryConfig):
    """MNIST from the IDX files (binexp/data/mnist.py); ``normalize``: imagenet = MNIST's own
    mean/std (the in-memory sets' default name for "the dataset's statistics") | half."""

    kind: str = "mnist"
    name: str = "mnist"
    root: str = "data/mnist"
    download: bool = False  # True: fetch the four .gz files from torchvision's MNIST mirrors when online
    batch_size: int = 50  # FleXOR's MNIST recipe (Fig. 4)
    eval_batch_size: int = 500
    augment: bool = False  # True: random crop with crop_padding (no flip: digits are not mirror-symmetric)
    crop_padding: int = 2


@dataclass
class Cifar10CConfig(InMemoryConfig):
    """CIFAR-10-C for ``binexp evaluate`` only (binexp/data/cifar10c.py): ``root`` holds the
    release's ``labels.npy`` and one ``<corruption>.npy`` per corruption. ``normalize`` follows
    the evaluated run's unless set here."""

    kind: str = "cifar10c"
    name: str = "cifar10c"
    root: str = "data/CIFAR-10-C"
    # default: the benchmark's 15 (mean corruption accuracy is over these); the release's 4 extras
    # (speckle_noise, gaussian_blur, spatter, saturate) may be listed too
    corruptions: list[str] = field(default_factory=list)
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    augment: bool = False

    def __post_init__(self) -> None:
        from binexp.data.cifar10c import CORRUPTIONS, EXTRA_CORRUPTIONS

        super().__post_init__()
        self.corruptions = list(self.corruptions) or list(CORRUPTIONS)
        known = CORRUPTIONS + EXTRA_CORRUPTIONS
        unknown = [c for c in self.corruptions if c not in known]
        if unknown:
            raise ValueError(f"data.corruptions: unknown {unknown[0]!r}; choose from: {', '.join(known)}")
        if not self.severities or any(s not in (1, 2, 3, 4, 5) for s in self.severities):
            raise ValueError(f"data.severities must be a non-empty subset of 1..5, got {list(self.severities)}")


@dataclass
class ImageFolderConfig:
    """Any train/ + val/ tree of class folders (torchvision ImageFolder)."""

    kind: str = "imagefolder"
    name: str = "imagefolder"
    root: str = "data/imagefolder"
    num_classes: int | None = None  # None: count the class folders
    image_size: int = 224
    crop_ratio: float = 0.875  # val: resize the short side to image_size/crop_ratio, then center crop
    # RandomResizedCrop area range (the RBNN code's DALI loader used [0.08, 1.25])
    scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    batch_size: int = 256
    eval_batch_size: int = 256
    num_workers: int = 4
    # pil (PIL in loader workers) | tensor: read bytes in workers, decode JPEGs in batches on the
    # training device (nvJPEG on GPU)
    decode: str = "pil"

    def __post_init__(self) -> None:
        if self.decode not in ("pil", "tensor"):
            raise ValueError(f"data.decode must be pil or tensor, got {self.decode!r}")
        _positive("data", image_size=self.image_size, batch_size=self.batch_size, eval_batch_size=self.eval_batch_size)
        if not 0 < self.crop_ratio <= 1:
            raise ValueError(f"data.crop_ratio must be in (0, 1], got {self.crop_ratio}")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"data.scale must be [min, max] with 0 < min <= max, got {list(self.scale)}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")


def _build_cifar(c: CifarConfig) -> ClassifierData:
    from binexp.data.cifar import CIFARDataModule

    return CIFARDataModule(root=c.root, variant=c.variant, download=c.download, **c.loader_kwargs())


def _build_synthetic(c: SyntheticConfig) -> ClassifierData:
    from binexp.data.synthetic import SyntheticDataModule

    return SyntheticDataModule(
        num_classes=c.num_classes,
        train_size=c.train_size,
        val_size=c.val_size,
        image_size=c.image_size,
        noise=c.noise,
        seed=c.seed,
        **c.loader_kwargs(),
    )


def _build_photocrops(c: PhotoCropsConfig) -> ClassifierData:
    from binexp.data.photocrops import PhotoCropsDataModule

    return PhotoCropsDataModule(
        photos=tuple(c.photos),
        train_per_class=c.train_per_class,
        val_per_class=c.val_per_class,
        image_size=c.image_size,
        min_scale=c.min_scale,
        max_scale=c.max_scale,
        val_fraction=c.val_fraction,
        seed=c.seed,
        **c.loader_kwargs(),
    )


def _build_mnist(c: MNISTConfig) -> ClassifierData:
    from binexp.data.mnist import MNISTDataModule

    return MNISTDataModule(root=c.root, download=c.download, **c.loader_kwargs())


def _build_cifar10c(c: Cifar10CConfig) -> ClassifierData:
    from binexp.data.cifar10c import CIFAR10CDataModule

    return CIFAR10CDataModule(
        root=c.root, corruptions=tuple(c.corruptions), severities=tuple(c.severities), **c.loader_kwargs()
    )


def _build_imagefolder(c: ImageFolderConfig) -> ClassifierData:
    from binexp.data.imagefolder import ImageFolderDataModule

    return ImageFolderDataModule(
        root=c.root,
        image_size=c.image_size,
        crop_ratio=c.crop_ratio,
        scale=(c.scale[0], c.scale[1]),
        batch_size=c.batch_size,
        eval_batch_size=c.eval_batch_size,
        num_workers=c.num_workers,
        num_classes=c.num_classes,
        name=c.name,
        decode=c.decode,
    )


@dataclass(frozen=True)
class DatasetEntry:
    kind: str
    schema: type
    build: Callable[..., ClassifierData]


DATASETS: dict[str, DatasetEntry] = {
    "cifar": DatasetEntry("cifar", CifarConfig, _build_cifar),
    "synthetic": DatasetEntry("synthetic", SyntheticConfig, _build_synthetic),
    "imagefolder": DatasetEntry("imagefolder", ImageFolderConfig, _build_imagefolder),
    "mnist": DatasetEntry("mnist", MNISTConfig, _build_mnist),
    "photocrops": DatasetEntry("photocrops", PhotoCropsConfig, _build_photocrops),
    "cifar10c": DatasetEntry("cifar10c", Cifar10CConfig, _build_cifar10c),
}


def dataset_kinds() -> list[str]:
    return sorted(DATASETS)


def build_datamodule(cfg, seed: int | None = None) -> ClassifierData:
    """``seed``: the run seed, from which every epoch's order and augmentation derive."""
    datamodule = DATASETS[cfg.kind].build(cfg)
    datamodule.run_seed = seed
    return datamodule
