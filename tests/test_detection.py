"""Section 5.3 / Table 7: Faster R-CNN with (SE-)ResNet trunks, on a tiny COCO-format dataset."""
import json
import math
import pickle

import pytest
import torch
from PIL import Image
from torchvision.ops.misc import FrozenBatchNorm2d

from senet_core import create_model, se_modules
from senet_core.engine.detection import (TABLE7_RECIPE, CocoDetection, build_detector, coco_ap, collate,
                                  detections_to_coco, evaluate_detection, load_detector, train_detection)

pytest.importorskip("pycocotools")   # the detection path's own dependency

SIZE = 64
CATEGORIES = [{"id": 3, "name": "red square"}, {"id": 7, "name": "blue bar"}]   # non-contiguous ids
COLOURS = {3: (255, 0, 0), 7: (0, 0, 255)}
# Per image: (category id, [x, y, w, h], iscrowd). Image 2 of train holds the one crowd region.
SCENES = {
    "train": {1: [(3, [4, 6, 20, 18], 0)],
              2: [(7, [30, 10, 24, 12], 0), (3, [2, 40, 16, 16], 1)],
              3: [(3, [10, 30, 22, 22], 0), (7, [36, 4, 20, 10], 0)],
              4: [(7, [8, 8, 30, 14], 0)],
              5: [(3, [40, 40, 18, 18], 1)]},      # crowd only: no box to train on
    "val": {11: [(3, [6, 6, 22, 22], 0)],
            12: [(7, [20, 30, 30, 14], 0), (3, [44, 6, 14, 14], 0)]},
}


def write_coco(root, scenes, grayscale=()):
    """Splits ``scenes`` (split -> image id -> objects) in COCO's layout under ``root``; the images in
    ``grayscale`` are stored with one channel, as a few of COCO's are."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    annotation_id = 1
    for split, split_scenes in scenes.items():
        (root / split).mkdir()
        images, annotations = [], []
        for image_id, objects in split_scenes.items():
            pixels = torch.full((3, SIZE, SIZE), 128, dtype=torch.uint8)
            for category, (x, y, w, h), crowd in objects:
                x0, y0 = int(x), int(y)
                pixels[:, y0:y0 + math.ceil(h), x0:x0 + math.ceil(w)] = \
                    torch.tensor(COLOURS[category], dtype=torch.uint8)[:, None, None]
                annotations.append({"id": annotation_id, "image_id": image_id, "category_id": category,
                                    "bbox": [x, y, w, h], "area": w * h, "iscrowd": crowd})
                annotation_id += 1
            picture = Image.fromarray(pixels.permute(1, 2, 0).numpy())
            (picture.convert("L") if image_id in grayscale else picture).save(root / split / f"{image_id:06d}.png")
            images.append({"id": image_id, "file_name": f"{image_id:06d}.png", "width": SIZE, "height": SIZE})
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"info": {}, "licenses": [], "images": images, "annotations": annotations, "categories": CATEGORIES}))
    return root


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    return write_coco(tmp_path_factory.mktemp("coco"), SCENES)


def test_dataset_converts_boxes_labels_and_skips_crowd(coco_dir):
    train = CocoDetection(coco_dir, "train", train=True)
    assert train.category_ids == [3, 7] and train.num_classes == 3
    assert train.image_ids == [1, 2, 3, 4]          # image 5 has only a crowd region
    torch.manual_seed(1)
    image, target = train[1]
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32 and image.max() <= 1
    assert target["labels"].tolist() == [2]       # category 7 -> label 2; the crowd box is gone
    assert target["labels"].dtype == torch.int64 and target["boxes"].dtype == torch.float32
    assert target["boxes"].tolist() in ([[30, 10, 54, 22]], [[SIZE - 54, 10, SIZE - 30, 22]])   # xyxy or flipped
    assert int(target["image_id"]) == 2

    val = CocoDetection(coco_dir, "val", train=False)
    _, target = val[1]                             # no flips when not training
    assert target["boxes"].tolist() == [[20, 30, 50, 44], [44, 6, 58, 20]]
    assert target["labels"].tolist() == [2, 1]
    images, targets = collate([val[0], val[1]])
    assert isinstance(images, list) and len(images) == 2 and len(targets) == 2


def test_flip_moves_boxes_with_the_pixels(coco_dir):
    train = CocoDetection(coco_dir, "train", train=True)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, target = train[0]                   # a red square at x 4..24, y 6..24
        x1, y1, x2, y2 = target["boxes"][0].int().tolist()
        assert torch.allclose(image[:, y1:y2, x1:x2], torch.tensor([1.0, 0, 0])[:, None, None])
        seen.add(x1)
    assert seen == {4, SIZE - 24}


def test_torchvision_reads_the_edge_cases_coco_has(tmp_path):
    # An image without annotations, a box under a pixel wide, a box running off the image, a grayscale image.
    root = write_coco(tmp_path, {"edge": {21: [], 22: [(3, [10, 10, 0.5, 8], 0), (7, [50, 50, 30, 30], 0)],
                                          23: [(3, [4, 4, 10, 10], 0)]}}, grayscale={23})
    val = CocoDetection(root, "edge", train=False)
    assert val.image_ids == [21, 22, 23]
    image, target = val[0]
    assert image.shape == (3, SIZE, SIZE) and target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert int(target["image_id"]) == 21
    _, target = val[1]
    assert target["boxes"].tolist() == [[50, 50, SIZE, SIZE]]       # clamped; the sub-pixel box is dropped
    assert target["labels"].tolist() == [2] and target["area"].tolist() == [900] and target["iscrowd"].tolist() == [0]
    image, target = val[2]
    assert image.shape == (3, SIZE, SIZE) and target["labels"].tolist() == [1]   # grayscale read as RGB
    train = CocoDetection(root, "edge", train=True)
    assert train.image_ids == [22, 23]                              # no box to train on in image 21
    assert pickle.loads(pickle.dumps(train))[0][1]["labels"].tolist() == [2]   # spawn-started workers can take it


def test_missing_data_names_the_paths_and_how_to_get_coco(tmp_path, coco_dir):
    with pytest.raises(FileNotFoundError) as error:
        CocoDetection(tmp_path / "nowhere", "val2017")
    message = str(error.value)
    assert "instances_val2017.json" in message and "val2017" in message and "cocodataset.org" in message
    with pytest.raises(FileNotFoundError, match="Splits found there: train, val"):
        CocoDetection(coco_dir, "val2017")
    with pytest.raises(ValueError, match="split"):
        CocoDetection(coco_dir, "")
    with pytest.raises(ValueError, match="val_split"):
        train_detection("resnet18", coco_dir, tmp_path / "run", train_split="train", val_split="")


def test_build_detector_rejects_bad_backbones():
    with pytest.raises(ValueError, match="unknown model"):
        build_detector("se_resnet5", num_classes=3)
    with pytest.raises(ValueError, match="not a ResNet-family"):
        build_detector("se_resnet20_cifar", num_classes=3)    # a ResNet, but a CIFAR one
    with pytest.raises(ValueError, match="not a ResNet-family"):
        build_detector("vgg16_bn", num_classes=3)
    with pytest.raises(ValueError, match="background"):
        build_detector("resnet18", num_classes=1)


def test_se_resnet50_trunk_keeps_its_se_blocks_and_runs_them():
    detector = build_detector("se_resnet50", num_classes=3, min_size=SIZE, max_size=SIZE).eval()
    trunk = detector.backbone.body
    blocks = se_modules(trunk)
    assert len(blocks) == 16                       # 3 + 4 + 6 + 3 bottlenecks, one SE block each
    assert detector.backbone.fpn.inner_blocks[-1][0].in_channels == 2048
    called = []
    handles = [b.register_forward_hook(lambda *_, name=n: called.append(name)) for n, b in blocks.items()]
    with torch.no_grad():
        outputs = detector([torch.rand(3, SIZE, SIZE)])
    for handle in handles:
        handle.remove()
    assert sorted(called) == sorted(blocks)
    assert set(outputs[0]) == {"boxes", "labels", "scores"}


def test_pretrained_trunk_gets_frozen_bn_and_frozen_early_stages(tmp_path):
    weights = tmp_path / "se_resnet18.pth"
    torch.save(create_model("se_resnet18").state_dict(), weights)
    detector = build_detector("se_resnet18", num_classes=3, pretrained_backbone=str(weights))
    trunk = detector.backbone.body
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trunk.modules())
    assert isinstance(trunk.stem.bn1, FrozenBatchNorm2d)
    trained = {name.split(".")[0] for name, p in trunk.named_parameters() if p.requires_grad}
    assert trained == {"layer2", "layer3", "layer4"}    # Detectron's FREEZE_AT 2
    assert any(p.requires_grad for p in se_modules(trunk)["layer4.1.se"].parameters())


def test_train_step_gives_finite_losses(coco_dir):
    torch.manual_seed(0)
    dataset = CocoDetection(coco_dir, "train", train=True)
    detector = build_detector("se_resnet18", dataset.num_classes, min_size=SIZE, max_size=SIZE).train()
    images, targets = collate([dataset[0], dataset[2]])
    losses = detector(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    assert detector.backbone.body.layer1[0].se.fc1.weight.grad is not None


def test_train_then_evaluate_end_to_end(coco_dir, tmp_path):
    out = tmp_path / "run"
    result = train_detection("resnet18", coco_dir, out, train_split="train", val_split="val", epochs=1,
                             batch_size=2, device="cpu", seed=0, min_size=SIZE, max_size=SIZE,
                             num_workers=0)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["iterations"] == 2 and math.isfinite(records[0]["loss"])
    assert 0 <= records[0]["ap"] <= 100 and 0 <= records[0]["ap50"] <= 100
    assert (out / "detector.pt").is_file() and not (out / "detector.pt.tmp").exists()

    scores = evaluate_detection(result["checkpoint"], coco_dir, "val", batch_size=2, num_workers=0, out=out)
    assert scores["num_images"] == 2 and 0 <= scores["ap"] <= 100 and 0 <= scores["ap50"] <= 100
    assert scores["ap"] == pytest.approx(records[0]["ap"])
    assert (out / "detections_val.json").is_file()
    assert load_detector(out / "detector.pt").category_ids == [3, 7]


def test_ground_truth_as_detections_scores_100(coco_dir):
    val = CocoDetection(coco_dir, "val", train=False)
    outputs, image_ids = [], []
    for _, target in val:
        outputs.append({"boxes": target["boxes"], "labels": target["labels"],
                        "scores": torch.ones(len(target["labels"]))})
        image_ids.append(int(target["image_id"]))
    detections = detections_to_coco(outputs, image_ids, val.category_ids)
    assert {d["category_id"] for d in detections} == {3, 7}
    scores = coco_ap(val.coco, detections)
    assert scores["ap"] == pytest.approx(100.0) and scores["ap50"] == pytest.approx(100.0)
    shifted = [{**d, "bbox": [d["bbox"][0] + d["bbox"][2] / 2, *d["bbox"][1:]]} for d in detections]
    assert coco_ap(val.coco, shifted)["ap50"] < 100.0   # the metric is not blind to the boxes
    assert coco_ap(val.coco, [])["ap"] == 0.0


def test_table7_recipe_is_detectron_2x():
    recipe = TABLE7_RECIPE
    assert (recipe.base_lr, recipe.images_per_batch, recipe.iterations) == (0.02, 16, 180_000)
    assert recipe.lr_steps == (120_000, 160_000) and recipe.weight_decay == 1e-4 and recipe.momentum == 0.9
    assert (recipe.min_size, recipe.max_size) == (800, 1333)
    assert recipe.lr_for(2) == pytest.approx(0.0025) and recipe.warmup_iters_for(2) == 4000
    assert recipe.epochs_for(117_266) == 25
    assert recipe.lr_milestones == pytest.approx((2 / 3, 8 / 9))


def test_cli_train_detection_then_eval_detection(coco_dir, tmp_path, capsys):
    from senet_core.cli import main

    out = tmp_path / "cli"
    assert main(["train-detection", "--model", "se_resnet18", "--data-dir", str(coco_dir), "--out", str(out),
                 "--train-split", "train", "--val-split", "val", "--epochs", "1", "--batch-size", "2",
                 "--min-size", str(SIZE), "--max-size", str(SIZE), "--workers", "0", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["eval-detection", "--checkpoint", str(out / "detector.pt"), "--data-dir", str(coco_dir),
                 "--val-split", "val", "--workers", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 <= result["ap"] <= 100 and result["num_images"] == 2
    assert main(["eval-detection", "--checkpoint", str(out / "detector.pt"), "--data-dir", str(coco_dir),
                 "--split", "val", "--limit", "1", "--workers", "0", "--json"]) == 0   # the older spellings
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["num_images"] == 1
    assert main(["eval-detection", "--checkpoint", str(out / "detector.pt"), "--data-dir", str(coco_dir),
                 "--split", "test"]) == 2
    assert "instances_test.json" in capsys.readouterr().err
