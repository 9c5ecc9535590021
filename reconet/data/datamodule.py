"""Lightning DataModule: frame-pair datasets from config -> training and validation loaders.

The datasets themselves (:mod:`reconet.data`) know nothing about Lightning or Hydra; this
module receives them as factories (``functools.partial`` objects built by Hydra from
``data.train`` / ``data.val``) and completes them with the transform it builds from the
data settings. Several training factories are concatenated (e.g. Sintel + FlyingChairs).

A dataset class that needs a one-time preprocessing step (decoding videos and estimating
their flow, :class:`reconet.data.videos.VideoPairs`) exposes a classmethod ``prepare`` with
the constructor's arguments; :meth:`ReCoNetDataModule.prepare_data` calls it, as Lightning
intends for work that writes to disk.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from reconet.data.errors import DatasetError
from reconet.data.transforms import build_transform

DatasetFactory = Callable[..., Dataset]
# Signals a training job is stopped or warned with (SIGUSR1: SLURM's default requeue signal).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
_TENSOR_KEYS = ("frame1", "frame2", "flow", "mask")


def collate_pairs(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack the tensors of a list of samples; ``meta`` stays a list of dicts (one per sample).

    Returns:
        {"frame1": (B, 3, H, W), "frame2": (B, 3, H, W), "flow": (B, 2, H, W),
         "mask": (B, 1, H, W), "meta": list of B dicts}
    """
    if not samples:
        raise ValueError("collate_pairs got an empty list of samples")
    shapes = {tuple(s["frame1"].shape) for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"cannot batch frame pairs of different sizes {sorted(shapes)}; set data.size / data.crop")
    batch: dict[str, Any] = {key: torch.stack([s[key] for s in samples]) for key in _TENSOR_KEYS}
    batch["meta"] = [dict(s.get("meta", {})) for s in samples]
    return batch


def _evenly_spaced(dataset: Dataset, count: int | None) -> Dataset:
    """At most ``count`` samples spread over the whole dataset (deterministic)."""
    length = len(dataset)  # type: ignore[arg-type]
    if count is None or count >= length:
        return dataset
    if count <= 0:
        raise ValueError(f"data.val_pairs must be positive or null, got {count}")
    indices = [round(i * (length - 1) / max(count - 1, 1)) for i in range(count)]
    return Subset(dataset, sorted(set(indices)))


def _factory_name(name: str, factory: DatasetFactory) -> str:
    func = factory.func if isinstance(factory, functools.partial) else factory
    return f"{name} ({getattr(func, '__qualname__', func)})"


def init_worker(worker_id: int, rank: int = 0) -> None:
    """DataLoader ``worker_init_fn``: ignore stop signals, then seed as Lightning would.

    A signal sent to the whole process group (Ctrl-C, ``timeout``, ``docker stop``, SLURM's
    SIGUSR1 before the time limit) reaches the workers too; if they died of it, the main
    process would fail with "DataLoader worker ... is killed by signal" instead of stopping
    cleanly (``GracefulStop``). The main process shuts its workers down itself. Setting a
    worker_init_fn disables Lightning's own seeding of workers
    (``seed_everything(workers=True)``), so it is called here.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        pl_worker_init_function(worker_id, rank=rank)


class ReCoNetDataModule(pl.LightningDataModule):
    """Training and validation frame pairs.

    Args:
        train: name -> dataset factory; each is called as ``factory(transform=...)``.
            Several are concatenated.
        val: name -> dataset factory for validation (ground-truth flow where the data has it).
        size: (H, W) training size.
        val_size: (H, W) validation size (center crop after a resize that keeps the aspect).
        batch_size: frame pairs per training step and device.
        val_batch_size: frame pairs per validation step.
        num_workers: DataLoader worker processes.
        crop: training geometry, ``"random"`` / ``"center"`` / ``"none"`` (plain resize), see
            :func:`reconet.data.transforms.build_transform`.
        hflip: random horizontal flips (u is negated) for training.
        val_pairs: use at most this many validation pairs, evenly spaced (None: all).
        pin_memory: pin host memory for faster copies to a GPU.
    """

    def __init__(
        self,
        train: Mapping[str, DatasetFactory],
        val: Mapping[str, DatasetFactory] | None = None,
        *,
        size: Sequence[int] | None = (360, 640),
        val_size: Sequence[int] | None = None,
        batch_size: int = 2,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        crop: str = "random",
        hflip: bool | float = True,
        val_pairs: int | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if not train:
            raise ValueError("ReCoNetDataModule needs at least one training dataset (data.train is empty)")
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self.train_factories = dict(train)
        self.val_factories = dict(val or {})
        self.size = tuple(size) if size is not None else None
        self.val_size = tuple(val_size) if val_size is not None else self.size
        self.batch_size = int(batch_size)
        self.val_batch_size = int(val_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.crop = crop
        self.hflip = hflip
        self.val_pairs = val_pairs
        self.pin_memory = pin_memory
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None

    # -- Lightning hooks -------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Run the one-time preprocessing of datasets that need it (writes caches to disk)."""
        for factory in (*self.train_factories.values(), *self.val_factories.values()):
            func = factory.func if isinstance(factory, functools.partial) else factory
            prepare = getattr(func, "prepare", None)
            if prepare is not None and isinstance(factory, functools.partial):
                prepare(*factory.args, **factory.keywords)

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets (once; later calls are no-ops). Raises DatasetError early."""
        if self.train_dataset is None:
            train_transform = build_transform(self.size, crop=self.crop, hflip=self.hflip)
            self.train_dataset = self._build(self.train_factories, train_transform)
        if self.val_dataset is None and self.val_factories:
            val_transform = build_transform(self.val_size, crop="center", hflip=False)
            self.val_dataset = _evenly_spaced(self._build(self.val_factories, val_transform), self.val_pairs)

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return DataLoader(
            self.train_dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=len(self.train_dataset) >= self.batch_size,  # type: ignore[arg-type]
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=collate_pairs,
            worker_init_fn=self._worker_init_fn(),
        )

    def val_dataloader(self) -> DataLoader | list:
        self.setup("fit")
        if self.val_dataset is None:
            return []
        return DataLoader(
            self.val_dataset,
            batch_size=self.val_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=collate_pairs,
            worker_init_fn=self._worker_init_fn(),
        )

    # -- helpers ---------------------------------------------------------------------------
    def _worker_init_fn(self) -> Callable[[int], None] | None:
        if self.num_workers == 0:
            return None
        trainer = getattr(self, "_trainer", None)
        return functools.partial(init_worker, rank=int(trainer.global_rank) if trainer is not None else 0)

    @staticmethod
    def _build(factories: Mapping[str, DatasetFactory], transform: Callable | None) -> Dataset:
        datasets = []
        for name, factory in factories.items():
            dataset = factory(transform=transform)
            if len(dataset) == 0:  # type: ignore[arg-type]
                raise DatasetError(f"dataset {_factory_name(name, factory)} holds no frame pairs")
            datasets.append(dataset)
        return datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)

    def fixed_val_sample(self, index: int = 0) -> dict[str, Any] | None:
        """One validation sample, always the same (for image logging and samples); None without val data."""
        self.setup("fit")
        if self.val_dataset is None or len(self.val_dataset) == 0:  # type: ignore[arg-type]
            return None
        return self.val_dataset[index % len(self.val_dataset)]  # type: ignore[arg-type]
