"""The coco task: embedded generator, real COCO layout, evaluation mapping, malformed data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from suite.errors import DataError
from tasks.coco import Coco
from tasks.cocodata import CATEGORIES, CocoSplit, check_layout, embedded_root


def test_embedded_set_is_genuine_coco_with_gaps_in_ids_and_empty_images() -> None:
    root = embedded_root()
    check_layout(root)  # the same validation as real data
    doc = json.loads((root / "coco" / "annotations" / "instances_val2017.json").read_text())
    assert sorted(c["id"] for c in doc["categories"]) == [c for c, _ in CATEGORIES] == [3, 7, 11, 20]
    annotated = {a["image_id"] for a in doc["annotations"]}
    assert any(im["id"] not in annotated for im in doc["images"])
    assert len({(im["width"], im["height"]) for im in doc["images"]}) > 10
    task = Coco()
    data = task.open(None, task.profile("smoke", None)).data
    assert data.info.kind == "embedded" and "embedded" in data.info.label and data.info.num_classes == 4


def test_real_layout_maps_non_contiguous_ids_and_keeps_unannotated_images(tiny_coco: Path) -> None:
    task = Coco()
    prof = task.profile("smoke", tiny_coco)
    data = task.open(tiny_coco, prof).data
    assert data.info.kind == "real" and data.info.path == str((tiny_coco / "coco").resolve())
    assert data.val.cat_ids == [5, 17, 90] and data.val.label_of == {5: 1, 17: 2, 90: 3}
    img, target = data.train[0]  # image id 1000 has no annotation
    assert int(target["image_id"]) == 1000 and target["boxes"].shape == (0, 4) and img.shape == (3, 48, 64)
    _, crowd = data.train[3]  # the crowd box is left out of training targets
    assert crowd["boxes"].shape == (1, 4)
    sizes = {tuple(data.val[i][0].shape[1:]) for i in range(len(data.val))}
    assert len(sizes) > 1
    batch = next(task.train_batches(seed=0))
    loss = task.loss(task.build_model(__import__("suite").parse_variant("ln"), {}), batch)
    assert torch.isfinite(loss)


class _Oracle(nn.Module):
    """Returns each val image's ground truth as detections, in original pixel coordinates."""

    def __init__(self, split: CocoSplit) -> None:
        super().__init__()
        self.targets = [split[i][1] for i in range(len(split))]
        self.seen = 0

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for _ in images:
            t = self.targets[self.seen]
            self.seen += 1
            out.append({"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(len(t["labels"]))})
        return out


def test_evaluation_maps_labels_back_to_coco_ids(tiny_coco: Path) -> None:
    task = Coco()
    data = task.open(tiny_coco, task.profile("smoke", tiny_coco)).data
    perfect = task.evaluate(_Oracle(data.val), torch.device("cpu"))
    assert perfect["map"] == pytest.approx(100.0) and perfect["ap50"] == pytest.approx(100.0)
    oracle = _Oracle(data.val)
    for t in oracle.targets:  # one label off: every category id is wrong after the mapping
        t["labels"] = t["labels"] % 3 + 1
    assert task.evaluate(oracle, torch.device("cpu"))["map"] == pytest.approx(0.0)


def test_detector_reports_boxes_in_original_image_size(tiny_coco: Path) -> None:
    task = Coco()
    task.open(tiny_coco, task.profile("smoke", tiny_coco))
    model = task.build_model(__import__("suite").parse_variant("ln"), {}).eval()
    model.score_thresh = 0.0
    img = torch.rand(3, 48, 96)  # resized to 128x128 inside; boxes must come back in 96x48
    with torch.no_grad():
        boxes = model([img])[0]["boxes"]
    assert len(boxes) > 0
    assert float(boxes[:, 2].max()) <= 96 + 1e-4 and float(boxes[:, 3].max()) <= 48 + 1e-4
    assert float(boxes[:, 2].max()) > 48  # not clipped to the short side: really rescaled per axis


@pytest.mark.parametrize("breakage, needle", [
    (lambda c: (c / "annotations" / "instances_val2017.json").unlink(), "instances_val2017.json is missing"),
    (lambda c: (c / "annotations" / "instances_train2017.json").write_text("{not json"), "not readable COCO JSON"),
    (lambda c: (c / "annotations" / "instances_train2017.json").write_text("[]"), "lacks images/annotations"),
    (lambda c: (c / "val2017" / "000000001007.jpg").unlink(), "000000001007.jpg is missing"),
])
def test_malformed_coco_is_a_one_line_error_naming_the_file(tiny_coco: Path, breakage, needle: str) -> None:
    breakage(tiny_coco / "coco")
    with pytest.raises(DataError, match=needle) as e:
        Coco().check_data(tiny_coco)
    assert "\n" not in str(e.value)
