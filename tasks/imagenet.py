"""``imagenet``: image classification on a timm ViT, top-1/top-5.

Real data: ``--data-root DIR`` with the ImageNet class-folder layout
``DIR/imagenet/{train,val}/<class>/*.JPEG`` (any image size). Embedded default: the
handwritten digits that ship with scikit-learn (1,797 real 8x8 scans, 10 classes, UCI
optical digits), upsampled to 16x16 RGB and split 80/20 with a fixed permutation.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from suite.errors import DataError
from suite.parts import BuildArgs, InputSpec, JsonObject
from suite.task import DatasetInfo, Profile, Recipe, Task, register_task, setting, setting_object, to_device
from suite.variants import Variant
from tasks.imagecache import CachedImages, maybe_cache

IMAGE_EXTS = {".jpeg", ".jpg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LAYOUT = "DIR/imagenet/{train,val}/<class>/*.JPEG"


@register_task("imagenet")
class ImageNet(Task["_Embedded | _Folders"]):
    """Image classification (top-1/top-5) on timm ViT/DeiT; embedded: scikit-learn digits."""

    version = "1"
    primary_metric = "top1"
    metrics = {"top1": "higher", "top5": "higher", "eval_loss": "lower"}
    throughput_unit = "img/s"
    data_folder = "imagenet"

    def profiles(self, embedded: bool) -> dict[str, Profile]:
        img = 16 if embedded else 32  # sized for the data: 16 tokens of 4x4 px (2x2 digit pixels)
        vit: JsonObject = {"img_size": img, "patch_size": 4, "embed_dim": 96, "depth": 4, "num_heads": 3,
                           "mlp_ratio": 4.0}
        smoke = Profile("smoke", "vit_tiny_patch16_224", vit,
                        Recipe(steps=1000, batch_size=64, lr=2e-3, weight_decay=0.05, warmup_steps=100,
                               label_smoothing=0.1, grad_clip=1.0),
                        throughput_batch=64, timing_s_per_model=6.0)
        out = {"smoke": smoke}
        if not embedded:  # the published recipes, on the real ImageNet layout
            out["paper"] = paper_profile("paper", "deit_tiny_patch16_224", drop_path=0.1, lr=1e-3, warmup_epochs=5)
            out["paper-deit-s"] = paper_profile("paper-deit-s", "deit_small_patch16_224", drop_path=0.1, lr=1e-3,
                                                warmup_epochs=5)
            out["paper-swin-t"] = paper_profile("paper-swin-t", "swin_tiny_patch4_window7_224", drop_path=0.2, lr=1e-3,
                                                warmup_epochs=20, grad_clip=5.0)
        return out

    # -- data -----------------------------------------------------------------------------
    def data_identity(self, data_root: Path | None) -> dict[str, object]:
        from sklearn import __version__ as sklearn_version
        out = super().data_identity(data_root)
        return out | {"sklearn": sklearn_version} if data_root is None else out

    def check_data(self, data_root: Path | None) -> None:
        if data_root is not None:
            check_class_folders(data_root / "imagenet", ("train", "val"), LAYOUT)

    def load(self, data_root: Path | None, profile: Profile) -> _Embedded | _Folders:
        img = setting(profile.model_kwargs, "img_size", int)
        if data_root is None:
            return _Embedded(img)
        self.check_data(data_root)
        return _Folders(data_root / "imagenet", img, setting_object(profile.extra, "augment"))

    def model_args(self, variant: Variant, variant_kwargs: Mapping[str, object]) -> BuildArgs:
        args = super().model_args(variant, variant_kwargs)
        args["kwargs"] |= {"num_classes": self.data.info.num_classes,
                           "attention_kwargs": self.prof.extra.get("attention_kwargs")}
        return args

    # -- loss and metrics -----------------------------------------------------------------
    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        mix = setting_object(self.prof.extra, "mixup")
        if mix and len(x) % 2 == 0:  # Mixup/CutMix (timm) with soft targets; label smoothing inside
            from timm.data import Mixup
            from timm.loss import SoftTargetCrossEntropy
            mixer = Mixup(**mix, num_classes=self.data.info.num_classes)
            x, soft = mixer(x, y)
            return SoftTargetCrossEntropy()(model(x), soft)
        return F.cross_entropy(model(x), y, label_smoothing=self.prof.recipe.label_smoothing)

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, device: torch.device, limit: int | None = None) -> dict[str, float]:
        model.eval()
        correct1 = correct5 = n = 0
        loss_sum = 0.0
        for x, y in self.data.eval_batches(self.prof.recipe.eval_batch_size):
            if limit is not None and n >= limit:
                break
            if limit is not None:
                x, y = x[:limit - n], y[:limit - n]
            x, y = to_device((x, y), device)
            logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            correct1 += (top[:, 0] == y).sum().item()
            correct5 += (top == y[:, None]).any(dim=1).sum().item()
            n += len(y)
        out = {"top1": 100.0 * correct1 / n, "eval_loss": loss_sum / n}
        if (self.data.info.num_classes or 0) >= 5:
            out["top5"] = 100.0 * correct5 / n
        return out

    def sample_inputs(self, n: int, device: torch.device) -> torch.Tensor:
        x, _ = next(iter(self.data.eval_batches(n)))
        return x.to(device)

    def input_spec(self) -> InputSpec:
        img = setting(self.prof.model_kwargs, "img_size", int)
        return {"kind": "image", "shape": [3, img, img]}


class _Embedded:
    """scikit-learn's digits as normalised 3x16x16 tensors, held in memory."""

    def __init__(self, img: int) -> None:
        from sklearn import __version__ as sk_version
        from sklearn.datasets import load_digits
        d = load_digits()
        x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
        y = torch.tensor(d.target, dtype=torch.long)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        x = F.interpolate(x[perm], size=img, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
        y = y[perm]
        n_train = int(0.8 * len(x))
        mean, std = x[:n_train].mean(), x[:n_train].std()
        self.x, self.y, self.n_train = (x - mean) / std, y, n_train
        self.pad_value = float(-mean / std)  # background after normalisation
        digest = hashlib.sha256(d.images.tobytes() + d.target.tobytes()).hexdigest()[:16]
        self.info = DatasetInfo(f"sklearn-digits-{sk_version}", "embedded", None, n_train, len(x) - n_train,
                                digest, num_classes=10)

    def train_batches(self, batch: int, seed: int, rank: int = 0,
                      world: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(seed)
        xs, ys = self.x[:self.n_train], self.y[:self.n_train]
        padded = F.pad(xs, (2, 2, 2, 2), value=self.pad_value)
        size = xs.shape[-1]
        while True:
            perm = torch.randperm(self.n_train, generator=g)[rank::world]  # same order everywhere, one shard each
            for i in range(0, len(perm) - batch + 1, batch):
                idx = perm[i:i + batch]
                shifts = torch.randint(0, 5, (len(idx), 2), generator=g).tolist()  # +-2 px translation
                xb = torch.stack([padded[j, :, a:a + size, b:b + size] for j, (a, b) in zip(idx.tolist(), shifts)])
                yield xb, ys[idx]

    def eval_batches(self, batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(self.n_train, len(self.x), batch):
            yield self.x[i:i + batch], self.y[i:i + batch]


class _Folders:
    """ImageNet class folders through torchvision's ImageFolder, val mapped to train's classes."""

    def __init__(self, root: Path, img: int, augment: JsonObject | None = None) -> None:
        from timm.data import create_transform
        from torchvision import datasets
        # timm's standard pipelines: random-resized crop + flip (+ RandAugment and random erasing for the
        # paper recipes) for training; resize to img/0.875 and centre crop for evaluation
        train_tf = create_transform(img, is_training=True, mean=MEAN, std=STD, **(augment or {}))
        val_tf = create_transform(img, is_training=False, mean=MEAN, std=STD, crop_pct=0.875,
                                  interpolation=(augment or {}).get("interpolation", "bilinear"))
        train = datasets.ImageFolder(str(root / "train"), train_tf)
        val = datasets.ImageFolder(str(root / "val"), val_tf)
        to_idx = train.class_to_idx
        val.samples = [(p, to_idx[val.classes[c]]) for p, c in val.samples]
        val.targets = [c for _, c in val.samples]
        ident = "\n".join(f"{Path(p).relative_to(root)}" for p, _ in train.samples + val.samples)
        self.info = DatasetInfo("imagenet", "real", str(root.resolve()), len(train), len(val),
                                hashlib.sha256(ident.encode()).hexdigest()[:16], num_classes=len(to_idx))
        self.train, self.val = maybe_cache(train, img), maybe_cache(val, img)  # small splits: decoded once

    def _loader(self, ds: Any, batch: int, shuffle: bool, seed: int = 0, drop_last: bool = False,
                sampler: Any = None) -> Any:
        # in memory: no worker at all; streaming from disk: workers that live as long as the loader
        # (a worker started anew every epoch costs about a second, and a small folder's epoch is a batch)
        workers = 0 if isinstance(ds, CachedImages) else min(4, max(0, (torch.get_num_threads() or 1) - 1))
        return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=shuffle and sampler is None, sampler=sampler,
                                           drop_last=drop_last, num_workers=workers, persistent_workers=workers > 0,
                                           generator=torch.Generator().manual_seed(seed))

    def train_batches(self, batch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[Any]:
        from torch.utils.data.distributed import DistributedSampler
        sampler: DistributedSampler[Any] | None = (
            DistributedSampler(self.train, num_replicas=world, rank=rank, seed=seed) if world > 1 else None)
        batch = max(1, min(batch, len(self.train) // world))
        loader = self._loader(self.train, batch, shuffle=True, seed=seed, drop_last=True, sampler=sampler)
        epoch = 0
        while True:
            if sampler is not None:
                sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    def eval_batches(self, batch: int) -> Iterator[Any]:
        yield from self._loader(self.val, batch, shuffle=False)


IMAGENET_TRAIN_IMAGES = 1_281_167


def paper_profile(name: str, model: str, *, drop_path: float, lr: float, warmup_epochs: int,
                  grad_clip: float | None = None, epochs: int = 300, batch: int = 1024) -> Profile:
    """DeiT / Swin ImageNet-1k recipe: AdamW, cosine, label smoothing 0.1, RandAugment m9, random erasing
    0.25, Mixup 0.8 / CutMix 1.0 (repeated augmentation and EMA are not implemented)."""
    steps_per_epoch = IMAGENET_TRAIN_IMAGES // batch
    recipe = Recipe(steps=epochs * steps_per_epoch, batch_size=batch, lr=lr, weight_decay=0.05, min_lr=1e-5,
                    warmup_steps=warmup_epochs * steps_per_epoch, label_smoothing=0.1, grad_clip=grad_clip,
                    eval_batch_size=256, scale_lr_with_batch=True)
    extra: JsonObject = {
        "augment": {"auto_augment": "rand-m9-mstd0.5-inc1", "re_prob": 0.25, "interpolation": "bicubic"},
        "mixup": {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "label_smoothing": 0.1},
        "hardware": "8 x 40-80 GB GPUs (A100 class); DeiT-T about 1-2 days per cell, DeiT-S/Swin-T 2-4 days"}
    return Profile(name, model, {"img_size": 224, "drop_path_rate": drop_path}, recipe, throughput_batch=256,
                   timing_s_per_model=20.0, extra=extra, amp="fp16")  # DeiT: fp16 autocast, loss scaling


def check_class_folders(root: Path, splits: tuple[str, ...], layout: str) -> None:
    """Validate ``root/<split>/<class>/<image>``; val classes must be a subset of train's."""
    classes: dict[str, set[str]] = {}
    for split in splits:
        if not (root / split).is_dir():
            raise DataError(f"{root / split} is missing: --data-root must hold the layout {layout}")
    for split in splits:
        d = root / split
        names = sorted(p.name for p in d.iterdir() if p.is_dir())
        if not names:
            raise DataError(f"{d} has no class folders: expected {layout}")
        for name in names:
            if not any(f.suffix.lower() in IMAGE_EXTS for f in (d / name).iterdir() if f.is_file()):
                raise DataError(f"{d / name} holds no image files ({', '.join(sorted(IMAGE_EXTS))}): expected {layout}")
        classes[split] = set(names)
    extra = classes[splits[1]] - classes[splits[0]]
    if extra:
        raise DataError(f"{root / splits[1]} has classes missing from {root / splits[0]} "
                        f"(e.g. {sorted(extra)[0]!r}): train and val must share class folder names")
    if len(classes[splits[0]]) < 2:
        raise DataError(f"{root / splits[0]} has a single class folder: classification needs at least 2")
