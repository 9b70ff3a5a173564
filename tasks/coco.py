"""``coco``: object detection, FCOS on a timm ViT/DeiT/Swin backbone; box mAP by pycocotools.

Real data: the COCO 2017 layout under ``--data-root`` (non-contiguous category ids and
images without annotations handled). Embedded default: a generated shapes set written in
the same layout (``tasks.cocodata``). Images are resized to a fixed square at the input
(the ViT's positions fix its size); predictions are mapped back to original image sizes
and category ids before ``COCOeval``. Only the backbone carries the variant, and deploy is
checked on the backbone's pyramid features.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn as nn

from suite.parts import BuildArgs, InputSpec, JsonObject
from suite.task import DatasetInfo, Profile, Recipe, Task, register_task, setting
from suite.variants import Variant
from tasks.cocodata import CocoSplit, check_layout, embedded_root

#: a training batch: the images (each its own size) and their targets (boxes, labels, image id)
Batch = tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]


@register_task("coco")
class Coco(Task["_Data"]):
    """Object detection (box mAP@[.5:.95], AP50) with FCOS on timm backbones; embedded: generated shapes."""

    version = "1"
    family = "detection"  # a vision task whose variants may keep their own budget rules (prepbn: the whole run)
    primary_metric = "map"
    metrics = {"map": "higher", "ap50": "higher"}
    throughput_unit = "img/s"
    data_folder = "coco"
    curve_eval_items = 24

    def profiles(self, embedded: bool) -> dict[str, Profile]:
        img = 96 if embedded else 128
        vit: JsonObject = {"patch_size": 8, "embed_dim": 96, "depth": 4, "num_heads": 3}
        smoke = Profile("smoke", "vit_tiny_patch16_224", vit,
                        Recipe(steps=300, batch_size=8, lr=2e-3, weight_decay=0.05, warmup_steps=50, grad_clip=1.0,
                               eval_batch_size=16),
                        throughput_batch=8, timing_s_per_model=4.0, extra={"img_size": img, "out_channels": 64})
        out = {"smoke": smoke}
        if not embedded:  # a 1x-style schedule: 12 epochs of COCO train2017 (~118k images) at batch 16
            steps = 12 * 118_287 // 16
            out["paper"] = Profile(
                "paper", "deit_small_patch16_224", {"patch_size": 16, "drop_path_rate": 0.1},
                Recipe(steps=steps, batch_size=16, lr=1e-4, weight_decay=0.05, warmup_steps=1000, min_lr=1e-6,
                       grad_clip=1.0, eval_batch_size=16, scale_lr_with_batch=True),
                throughput_batch=16, timing_s_per_model=20.0,
                extra={"img_size": 512, "out_channels": 256, "head_convs": 4,
                       "hardware": "8 x 40-80 GB GPUs; about 12-24 h per cell (backbone from scratch: "
                                   "no weights can be downloaded here)"}, amp="fp16")
        return out

    def data_identity(self, data_root: Path | None) -> dict[str, object]:
        from tasks.cocodata import GENERATOR_VERSION
        out = super().data_identity(data_root)
        return out | {"generator": GENERATOR_VERSION} if data_root is None else out

    def check_data(self, data_root: Path | None) -> None:
        if data_root is not None:
            check_layout(data_root)

    def load(self, data_root: Path | None, profile: Profile) -> _Data:
        root = embedded_root() if data_root is None else data_root
        if data_root is not None:
            check_layout(data_root)
        train, val = CocoSplit(root, "train2017"), CocoSplit(root, "val2017")
        digest = hashlib.sha256((train.fingerprint() + val.fingerprint()).encode()).hexdigest()[:16]
        name = "coco-shapes (generated)" if data_root is None else "coco2017"
        info = DatasetInfo(name, "embedded" if data_root is None else "real",
                           None if data_root is None else str((data_root / "coco").resolve()),
                           len(train), len(val), digest, num_classes=len(val.cat_ids))
        return _Data(train, val, setting(profile.extra, "img_size", int), info)

    def model_args(self, variant: Variant, variant_kwargs: Mapping[str, object]) -> BuildArgs:
        args = super().model_args(variant, variant_kwargs)
        extra = self.prof.extra
        args["factory"] = "detector"
        args["kwargs"] |= {"num_classes": self.data.info.num_classes, "img_size": extra["img_size"],
                           "out_channels": extra["out_channels"], "head_convs": extra.get("head_convs", 2),
                           "attention_kwargs": extra.get("attention_kwargs")}
        return args

    def forward(self, model: nn.Module, batch: Batch) -> Any:
        backbone, transform = cast(nn.Module, model.backbone), cast(nn.Module, model.transform)
        return backbone(transform(batch[0])[0].tensors)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return sum(model(batch[0], batch[1]).values())

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, device: torch.device, limit: int | None = None) -> dict[str, float]:
        from pycocotools.cocoeval import COCOeval
        model.eval()
        val, results = self.data.val, []
        step = self.prof.recipe.eval_batch_size
        n = len(val) if limit is None else min(limit, len(val))
        image_ids = []
        for i in range(0, n, step):
            items = [val[j] for j in range(i, min(n, i + step))]
            image_ids += [int(t["image_id"]) for _, t in items]
            outputs = model([x.to(device) for x, _ in items])
            for (_, target), out in zip(items, outputs):
                for box, score, label in zip(out["boxes"].tolist(), out["scores"].tolist(), out["labels"].tolist()):
                    results.append({"image_id": int(target["image_id"]), "category_id": val.cat_ids[label - 1],
                                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": score})
        if not results:
            return {"map": 0.0, "ap50": 0.0, "detections": 0}
        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(val.coco, val.coco.loadRes(results), "bbox")
            if limit is not None:  # score the evaluated images only
                ev.params.imgIds = image_ids
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return {"map": 100.0 * ev.stats[0], "ap50": 100.0 * ev.stats[1], "detections": len(results)}

    def deploy_probe(self, model: nn.Module) -> nn.Module:
        return cast(nn.Module, model.backbone)

    def sample_inputs(self, n: int, device: torch.device) -> torch.Tensor:
        from suite.models.detection import MEAN, STD
        size, val = self.data.size, self.data.val
        imgs = [val[j][0] for j in range(min(n, len(val)))]
        x = torch.stack([nn.functional.interpolate(i[None], size=(size, size), mode="bilinear")[0] for i in imgs])
        return ((x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]).to(device)

    def input_spec(self) -> InputSpec:
        return {"kind": "image", "shape": [3, self.data.size, self.data.size]}


class _Data:
    """Both splits, the square input size and the dataset identity."""

    def __init__(self, train: CocoSplit, val: CocoSplit, size: int, info: DatasetInfo) -> None:
        self.train, self.val, self.size, self.info = train, val, size, info

    def train_batches(self, batch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        """Endless shuffled batches of whole images (each its own size) and their targets."""
        g = torch.Generator().manual_seed(seed)
        n = len(self.train)
        b = max(1, min(batch, n // world))
        while True:
            perm = torch.randperm(n, generator=g).tolist()[rank::world]  # one shard per process
            for i in range(0, len(perm) - b + 1, b):
                items = [self.train[j] for j in perm[i:i + b]]
                yield [x for x, _ in items], [t for _, t in items]
