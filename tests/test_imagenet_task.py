from __future__ import annotations

from pathlib import Path

import pytest
import torch

from suite.errors import DataError
from tasks.imagenet import ImageNet, check_class_folders


def test_embedded_default_is_real_learnable_and_labelled() -> None:
    task = ImageNet()
    data = task.open(None, task.profile("smoke", None)).data
    assert data.info.kind == "embedded" and data.info.num_classes == 10 and "embedded" in data.info.label
    assert data.info.n_train + data.info.n_eval == 1797
    x, y = next(data.train_batches(8, seed=0))
    assert x.shape == (8, 3, 16, 16) and y.shape == (8,)
    x2, _ = next(data.train_batches(8, seed=0))
    assert torch.equal(x, x2)  # order and augmentation fixed by the seed


def test_real_layout_loads_with_val_mapped_to_train_classes(tiny_imagenet: Path) -> None:
    task = ImageNet()
    data = task.open(tiny_imagenet, task.profile("smoke", tiny_imagenet)).data
    assert data.info.kind == "real" and data.info.path == str((tiny_imagenet / "imagenet").resolve())
    assert data.info.num_classes == 3 and data.info.n_train == 18 and data.info.n_eval == 9
    x, _ = next(data.train_batches(4, seed=0))
    assert x.shape == (4, 3, 32, 32)
    model = task.build_model(__import__("suite").parse_variant("ln"), {})
    metrics = task.evaluate(model, torch.device("cpu"))
    assert set(metrics) == {"top1", "eval_loss"}  # top-5 is meaningless with 3 classes


@pytest.mark.parametrize("breakage, needle", [
    (lambda r: None, "train is missing"),
    (lambda r: (r / "train").mkdir(), "val is missing"),
    (lambda r: ((r / "train").mkdir(), (r / "val").mkdir()), "no class folders"),
])
def test_bad_layouts(tmp_path: Path, breakage, needle: str) -> None:
    root = tmp_path / "imagenet"
    root.mkdir()
    breakage(root)
    with pytest.raises(DataError, match=needle):
        check_class_folders(root, ("train", "val"), "LAYOUT")


def test_class_folder_without_images_and_unknown_val_class(tiny_imagenet: Path) -> None:
    root = tiny_imagenet / "imagenet"
    (root / "val" / "n99").mkdir()
    (root / "val" / "n99" / "x.JPEG").write_bytes(b"")
    with pytest.raises(DataError, match="classes missing from"):
        check_class_folders(root, ("train", "val"), "LAYOUT")
    (root / "train" / "n04").mkdir()
    (root / "train" / "n04" / "notes.txt").write_text("")
    with pytest.raises(DataError, match="holds no image files"):
        check_class_folders(root, ("train", "val"), "LAYOUT")
