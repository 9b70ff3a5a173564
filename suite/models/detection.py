"""Detectors on timm backbones: ``create_detector`` = backbone (any variant) + pyramid + FCOS.

Head: torchvision's FCOS, anchor-free, so no anchor shapes to tune for the embedded set's
small objects, one-stage (cheaper on a CPU than Faster R-CNN's two stages) and with few
hyper-parameters. Pyramids:
- ViT/DeiT: the simple pyramid of ViTDet from the last map. The backbone keeps its final
  norm and projects every token with its ``head`` Linear (``global_pool=''``), so deploy
  folding and the Pre-LN conversions see the same norm -> Linear pattern as in
  classification; the token map then goes up (transposed conv), stays, and goes down (max
  pool): strides patch/2, patch, 2*patch.
- Swin: the outputs of stages 1-3 (strides 4, 8, 16 for patch 4) through an FPN; Swin's
  final norm only serves classification and is dropped.
The variant lives in the backbone only; FCOS's own head (GroupNorm) is the same for all.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn as nn

from suite.models.create import create_model

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TokenPyramid(nn.Module):
    def __init__(self, body: nn.Module, out_channels: int) -> None:
        super().__init__()
        self.body, self.out_channels = body, out_channels
        vit: Any = body  # a timm VisionTransformer: its parts are read by name
        self.grid, self.prefix = tuple(vit.patch_embed.grid_size), vit.num_prefix_tokens
        self.up = nn.ConvTranspose2d(out_channels, out_channels, 2, stride=2)
        self.down = nn.MaxPool2d(2)
        patch = vit.patch_embed.patch_size[0]
        self.strides = (patch // 2, patch, patch * 2)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        t = self.body(x)[:, self.prefix:]  # [B, H*W, out]: normed tokens through the head Linear
        m = t.transpose(1, 2).reshape(t.shape[0], self.out_channels, *self.grid)
        return OrderedDict([("0", self.up(m)), ("1", m), ("2", self.down(m))])


class StagePyramid(nn.Module):
    body: Any  # a timm SwinTransformer: its parts are read by name

    def __init__(self, body: nn.Module, out_channels: int, stages: int = 3) -> None:
        from torchvision.ops import FeaturePyramidNetwork
        super().__init__()
        body.norm = nn.Identity()  # classification-only; the detector reads stage outputs
        self.body, self.out_channels, self.stages = body, out_channels, stages
        swin: Any = body
        dims = [stage.blocks[-1].norm1.normalized_shape[0] if hasattr(stage.blocks[-1].norm1, "normalized_shape")
                else stage.dim for stage in swin.layers[:stages]]
        self.fpn = FeaturePyramidNetwork(dims, out_channels)
        patch = swin.patch_embed.patch_size[0] if hasattr(swin.patch_embed, "patch_size") else 4
        self.strides = tuple(patch * 2 ** i for i in range(stages))

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = self.body.patch_embed(x)
        feats = OrderedDict()
        for i, stage in enumerate(self.body.layers[:self.stages]):
            x = stage(x)
            feats[str(i)] = x.permute(0, 3, 1, 2).contiguous()
        return self.fpn(feats)


def create_detector(backbone: str, variant: Any = "ln", *, num_classes: int, img_size: int, out_channels: int = 64,
                    head_convs: int = 2, variant_kwargs: dict | None = None, attention_kwargs: dict | None = None,
                    score_thresh: float = 0.05, **model_kwargs: Any) -> nn.Module:
    """FCOS over a timm ViT/DeiT/Swin backbone with ``variant``; ``num_classes`` excludes background."""
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOSHead
    common = dict(variant_kwargs=variant_kwargs, attention_kwargs=attention_kwargs, img_size=img_size, **model_kwargs)
    pyramid: TokenPyramid | StagePyramid
    if backbone.startswith("swin_"):
        pyramid = StagePyramid(create_model(backbone, variant, num_classes=0, **common), out_channels)
    else:
        pyramid = TokenPyramid(create_model(backbone, variant, num_classes=out_channels, global_pool="", **common),
                               out_channels)
    anchors = AnchorGenerator(tuple((s,) for s in pyramid.strides), ((1.0,),) * len(pyramid.strides))
    head = FCOSHead(out_channels, 1, num_classes + 1, num_convs=head_convs)
    return FCOS(pyramid, num_classes + 1, min_size=img_size, max_size=img_size, fixed_size=(img_size, img_size),
                image_mean=list(MEAN), image_std=list(STD), anchor_generator=anchors, head=head,
                score_thresh=score_thresh, nms_thresh=0.6, detections_per_img=100, topk_candidates=1000)
