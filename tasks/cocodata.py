"""COCO-format detection data: the embedded generator, the loader and its validation.

The embedded default is generated deterministically and written to disk as a genuine COCO
2017 layout (``coco/annotations/instances_{train2017,val2017}.json`` and PNG files), so the
very same loader and pycocotools evaluator run on it and on real COCO. It has four shape
categories with non-contiguous ids, random colours (the shape, not the colour, tells the
category), objects of 8-40 px on canvases of 72-160 px with textured backgrounds, and some
images without any object.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from suite.errors import DataError
from suite.parts import JsonObject

LAYOUT = "DIR/coco/annotations/instances_{train2017,val2017}.json with images in DIR/coco/{train2017,val2017}/"
CATEGORIES = [(3, "circle"), (7, "square"), (11, "triangle"), (20, "cross")]
GENERATOR_VERSION = "1"
SPLITS = {"train2017": 360, "val2017": 90}


def cache_root() -> Path:
    return Path(os.environ.get("NORMBENCH_CACHE", Path.home() / ".cache" / "normbench"))


def embedded_root() -> Path:
    """Generate the embedded set once (atomically) and return the folder holding ``coco/``."""
    root = cache_root() / f"coco-shapes-v{GENERATOR_VERSION}"
    if not (root / "coco" / "annotations" / "instances_val2017.json").exists():
        tmp = root.with_name(f"{root.name}.tmp{os.getpid()}")
        for i, (split, n) in enumerate(SPLITS.items()):
            write_split(tmp / "coco", split, n, seed=1000 + i)
        tmp.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # another process finished first: use its copy
            tmp.rename(root)
    return root


def write_split(coco: Path, split: str, n: int, seed: int) -> None:
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(seed)
    (coco / split).mkdir(parents=True, exist_ok=True)
    (coco / "annotations").mkdir(parents=True, exist_ok=True)
    images: list[JsonObject] = []
    anns: list[JsonObject] = []
    for image_id in range(1, n + 1):
        w, h = (int(v) for v in rng.integers(72, 161, 2))
        base = rng.integers(0, 90, 3)
        pixels = np.clip(base + rng.normal(0, 18, (h, w, 3)), 0, 255).astype(np.uint8)
        img = Image.fromarray(pixels)
        draw = ImageDraw.Draw(img)
        count = int(rng.choice([0, 1, 2, 3, 4], p=[0.1, 0.25, 0.3, 0.2, 0.15]))
        for _ in range(count):
            cat, name = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
            s = int(rng.integers(8, 41))
            x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
            colour = tuple(int(c) for c in rng.integers(120, 256, 3))
            draw_shape(draw, name, x, y, s, colour)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat,
                         "bbox": [float(x), float(y), float(s), float(s)], "area": float(s * s), "iscrowd": 0})
        file_name = f"{image_id:012d}.png"
        img.save(coco / split / file_name)
        images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
    doc = {"info": {"description": f"normbench embedded shapes v{GENERATOR_VERSION}"}, "images": images,
           "annotations": anns, "categories": [{"id": c, "name": n} for c, n in CATEGORIES]}
    (coco / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))


def draw_shape(draw: Any, name: str, x: int, y: int, s: int, colour: tuple[int, ...]) -> None:
    if name == "circle":
        draw.ellipse([x, y, x + s - 1, y + s - 1], fill=colour)
    elif name == "square":
        draw.rectangle([x, y, x + s - 1, y + s - 1], fill=colour)
    elif name == "triangle":
        draw.polygon([(x + s / 2, y), (x, y + s - 1), (x + s - 1, y + s - 1)], fill=colour)
    else:
        t = max(2, s // 4)
        draw.rectangle([x + (s - t) // 2, y, x + (s + t) // 2, y + s - 1], fill=colour)
        draw.rectangle([x, y + (s - t) // 2, x + s - 1, y + (s + t) // 2], fill=colour)


def check_layout(root: Path) -> None:
    """Validate ``root/coco``: both annotation files parse and name images that exist."""
    coco = root / "coco"
    for split in ("train2017", "val2017"):
        ann = coco / "annotations" / f"instances_{split}.json"
        if not ann.is_file():
            raise DataError(f"{ann} is missing: --data-root must hold the COCO layout {LAYOUT}")
        try:
            doc = json.loads(ann.read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{ann} is not readable COCO JSON ({type(e).__name__}): expected {LAYOUT}") from None
        if not isinstance(doc, dict) or not all(k in doc for k in ("images", "annotations", "categories")):
            raise DataError(f"{ann} lacks images/annotations/categories: expected COCO instances JSON")
        for image in doc["images"]:
            if not (coco / split / image["file_name"]).is_file():
                raise DataError(f"{coco / split / image['file_name']} is missing (named in {ann.name})")


class CocoSplit(torch.utils.data.Dataset):
    """Images and boxes of one split; category ids mapped to contiguous labels 1..K (0 = background)."""

    def __init__(self, root: Path, split: str) -> None:
        from pycocotools.coco import COCO
        self.dir = root / "coco" / split
        self.ann_file = root / "coco" / "annotations" / f"instances_{split}.json"
        with _quiet():
            self.coco = COCO(str(self.ann_file))
        self.ids = sorted(self.coco.imgs)
        self.cat_ids = sorted(self.coco.cats)
        self.label_of = {c: i + 1 for i, c in enumerate(self.cat_ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from PIL import Image
        image_id = self.ids[i]
        info = self.coco.imgs[image_id]
        img = np.asarray(Image.open(self.dir / info["file_name"]).convert("RGB"), dtype=np.float32) / 255.0
        anns = [a for a in self.coco.imgToAnns.get(image_id, []) if not a.get("iscrowd") and a["bbox"][2] > 1
                and a["bbox"][3] > 1]
        boxes = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                              for a in anns], dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.int64)
        return torch.from_numpy(img).permute(2, 0, 1).contiguous(), {"boxes": boxes, "labels": labels,
                                                                    "image_id": torch.tensor(image_id)}

    def fingerprint(self) -> str:
        return hashlib.sha256(self.ann_file.read_bytes()).hexdigest()[:16]


def _quiet() -> Any:
    import contextlib
    import io
    return contextlib.redirect_stdout(io.StringIO())
