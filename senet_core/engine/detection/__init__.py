"""Object detection on COCO with SE-ResNet trunks (Section 5.3, Table 7).

The paper swaps the trunk of a Faster R-CNN detector: ResNet-50/101 against SE-ResNet-50/101, each
initialised from its ImageNet model, trained end to end with Detectron's hyperparameters and
"2x" schedule on COCO's minival protocol (train on the 80k train images plus the 35k
val-minus-minival images, test on the 5k minival images), and reports COCO AP and AP@IoU=0.5.
COCO 2017's ``train2017`` / ``val2017`` are exactly those two sets, so they are our defaults.

This package builds that detector from torchvision's parts around our own ResNets
(``detector``: :func:`build_detector`), reads COCO and scores with the official COCO API
(``coco``: :class:`CocoDetection`, torchvision's COCO dataset with the detector's transforms, and
:func:`coco_ap`), trains (``train``: :func:`train_detection`) and evaluates (``evaluate``:
:func:`evaluate_detection`). :data:`TABLE7_RECIPE` is the schedule as data (``recipes.yaml``, read
as a :class:`~senet_core.engine.recipes.DetectionRecipe`).

Detector. The paper says "Faster R-CNN" and "Detectron"; it does not say C4 or FPN. We build
Faster R-CNN with FPN, [INFERRED]: Detectron's model zoo gives 37.9 AP for R-50-FPN and 39.8 AP
for R-101-FPN with the 2x schedule (R-50-C4 2x: 36.5), and Table 7's baselines are 38.0 and 39.9.

Deviations from Detectron's ``e2e_faster_rcnn_R-{50,101}-FPN_2x`` that remain:

* Trunk weights: our ImageNet checkpoints (the released SE models, or ours), fed RGB images
  normalised with the ImageNet mean/std they were trained with; Detectron used MSRA's Caffe
  ResNets on BGR images with mean subtraction only. The stem's max pool rounds up (Caffe style,
  see ``models/resnet.py``) where Detectron pads. Stride on the first 1x1 conv matches
  Detectron's ``STRIDE_1X1``.
* Box-head regression loss: torchvision's smooth L1 uses beta = 1/9 in the box head as in the
  RPN; Detectron uses beta = 1 in the box head.
* Training proposals: torchvision keeps the top 2000 RPN proposals per image; Detectron's FPN
  kept 2000 per minibatch.
* No aspect-ratio grouping of minibatches (Detectron groups); this changes padding, not the
  objective.
* One process, any batch size: the learning rate and the schedule follow Detectron's own linear
  scaling rule (lr and warm-up scaled by batch / 16, iterations by 16 / batch), and the schedule
  is counted in epochs (2x = 180k x 16 images = 24.35 passes over COCO train2017's 118,287
  images; 25 epochs over the 117,266 that have a box).

Unchanged from Detectron: frozen BN (torchvision's ``FrozenBatchNorm2d`` is Detectron's
AffineChannel), stem and conv2_x frozen (``trainable_layers=3`` is Detectron's ``FREEZE_AT: 2``),
FPN P2-P6 with 256 channels and P6 by stride-2 subsampling, anchors 32-512 with aspect ratios
0.5/1/2, RoIAlign 7x7 with sampling ratio 2, a two-FC 1024 box head, 512 RoIs per image with
25% foreground, test NMS 0.5 and 100 detections per image, training scale 800 (max 1333)
with horizontal flips only, SGD with momentum 0.9, weight decay 1e-4, bias learning rate x2
without weight decay, 500 iterations of linear warm-up from 1/3.
"""
from ..recipes import TABLE7_RECIPE, DetectionRecipe
from .coco import (CocoDetection, DetectionTarget, coco_ap, coco_loader, collate, detection_transforms,
                   detections_to_coco)
from .detector import TrunkWithFPN, build_detector, detection_backbones, freeze_batch_norm, load_detector
from .evaluate import evaluate_detection
from .train import train_detection

__all__ = ["TABLE7_RECIPE", "DetectionRecipe", "build_detector", "load_detector", "detection_backbones",
           "freeze_batch_norm", "TrunkWithFPN", "CocoDetection", "DetectionTarget", "detection_transforms", "collate",
           "coco_loader", "detections_to_coco", "coco_ap", "evaluate_detection", "train_detection"]
