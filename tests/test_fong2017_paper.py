"""fong2017's published configuration (configs/fong2017/paper.yaml) loads and validates end to end on tiny files in
the real formats that this test writes: ILSVRC'12 validation images (flat) with their CLS-LOC XML boxes and annotated
training images (the held-out threshold split), COCO val2014 (instances JSON read by pycocotools, JPEGs, TorchRay's
difficult list), the Oxford animal-parts keypoints (xml/eye, xml/foot), torchvision's GoogLeNet weights under their
published file name (random weights; the file's SHA-256 prefix put into the published URL, as the loader checks it)
and a COCO GoogLeNet checkpoint (random weights, 80 classes). Also: the loaders' known answers."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from paper_files import publish_torchvision_weights
from test_paper_data import write_jpeg, write_voc_xml

# 1000 classes so the labels index GoogLeNet's outputs; the tiny data uses the first three
WNIDS = [f"n{i:08d}" for i in range(1000)]
COCO_CATEGORIES = [{"id": i + 1 + (i >= 11), "name": f"category{i}", "supercategory": "thing"} for i in range(80)]  # gappy ids


def write_imagenet(root):
    (root).mkdir(parents=True, exist_ok=True)
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} class {i}\n" for i, w in enumerate(WNIDS)))
    for n in range(1, 5):  # validation: flat JPEGs + CLS-LOC XML (0-based inclusive boxes), labels from the XML
        stem = f"ILSVRC2012_val_{n:08d}"
        write_jpeg(root / "val" / f"{stem}.JPEG", 60, 40, [(10, 5, 40, 30)])
        write_voc_xml(root / "Annotations" / "CLS-LOC" / "val" / f"{stem}.xml", stem, 60, 40,
                      [(WNIDS[n % 3], 10, 5, 39, 29, 0)], database="ILSVRC_2012", folder="val")
    for wnid in WNIDS[:1]:  # training images: 11 annotated (held-out split and animal parts)
        for k in range(11):
            stem = f"{wnid}_{k}"
            write_jpeg(root / "train" / wnid / f"{stem}.JPEG", 50, 50, [(5, 5, 30, 30)])
            write_voc_xml(root / "Annotations" / "CLS-LOC" / "train" / wnid / f"{stem}.xml", stem, 50, 50,
                          [(wnid, 5, 5, 29, 29, 0)], database="ILSVRC_2012", folder=wnid)


def write_animal_parts(root, stems, eye=(12.0, 8.0), foot=(20.0, 45.0)):
    """One XML per image and part, as the official animal_parts.ipynb reads them (``<point>`` with x, y, class)."""
    for part, (x, y) in (("eye", eye), ("foot", foot)):
        d = root / "xml" / part
        d.mkdir(parents=True, exist_ok=True)
        for stem in stems:
            (d / f"{stem}.xml").write_text(
                f"<annotation><filename>{stem}.JPEG</filename><object><name>{part}</name>"
                f"<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>49</xmax><ymax>49</ymax></bndbox>"
                f"<point><x>{x}</x><y>{y}</y><class>{part}</class></point>"
                f"<point><x>{x + 4}</x><y>{y}</y><class>{part}</class></point></object></annotation>")


def write_coco(root, tmp_path):
    images = [{"id": 42, "file_name": "COCO_val2014_000000000042.jpg", "width": 64, "height": 48},
              {"id": 73, "file_name": "COCO_val2014_000000000073.jpg", "width": 40, "height": 40}]
    anns = [{"id": 1, "image_id": 42, "category_id": 1, "iscrowd": 0, "area": 256.0, "bbox": [8, 4, 16, 16],
             "segmentation": [[8, 4, 24, 4, 24, 20, 8, 20]]},
            {"id": 2, "image_id": 42, "category_id": 13, "iscrowd": 0, "area": 200.0, "bbox": [40, 10, 20, 30],
             "segmentation": [[40, 10, 60, 40, 40, 40]]},
            {"id": 3, "image_id": 73, "category_id": 13, "iscrowd": 0, "area": 100.0, "bbox": [10, 10, 10, 10],
             "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]]}]
    for im in images:
        write_jpeg(root / "val2014" / im["file_name"], im["width"], im["height"])
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val2014.json").write_text(json.dumps(
        {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": COCO_CATEGORIES}))
    difficult = tmp_path / "pointing_game_ebp_coco_difficult.txt"
    flags = lambda on: "\t".join("1" if k in on else "0" for k in range(80))  # noqa: E731
    difficult.write_text(f"COCO_val2014_000000000042\t{flags({0})}\nCOCO_val2014_000000000073\t{flags(set())}\n")
    return difficult


@pytest.fixture
def paper_files(tmp_path, monkeypatch):
    import torchvision

    imnet, coco, parts = tmp_path / "imagenet", tmp_path / "coco", tmp_path / "animal_parts"
    write_imagenet(imnet)
    write_animal_parts(parts, [f"{WNIDS[0]}_{k}" for k in range(11)])
    difficult = write_coco(coco, tmp_path)
    weights = tmp_path / "weights"
    torch.manual_seed(0)
    net = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    publish_torchvision_weights(net, torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1, weights, monkeypatch)
    coco_ckpt = tmp_path / "googlenet_coco.pt"
    torch.save(torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True, num_classes=80).state_dict(), coco_ckpt)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.setenv("SALIENCY_WEIGHTS", str(weights))
    return {"imagenet": imnet, "coco": coco, "difficult": difficult, "parts": parts, "coco_ckpt": coco_ckpt}


def _overrides(f: dict) -> list[str]:
    """Only roots, devices and sizes: the data roots, the checkpoint path, a 64-px image size, 2 held-out images."""
    return [
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
        "--trainer.enable_progress_bar", "false",
        "--model.data.root", str(f["imagenet"]), "--model.data.image_size", "64", "--model.data.heldout_images", "2",
        "--model.data.batch_size", "4",
        "--model.pointing_data.root", str(f["coco"]), "--model.pointing_data.difficult_list", str(f["difficult"]),
        "--model.pointing_data.image_size", "64", "--model.pointing_model.checkpoint", str(f["coco_ckpt"]),
        "--model.keypoints_data.root", str(f["parts"]), "--model.keypoints_data.image_root", str(f["imagenet"]),
        "--model.keypoints_data.image_size", "64",
    ]


def test_paper_config_is_the_published_setting():
    cfg = yaml.safe_load(open("configs/fong2017/paper.yaml"))
    m = cfg["model"]
    assert cfg["trainer"]["strategy"] == "ddp" and m["model"] == {"name": "googlenet", "pretrained": True, "num_classes": 1000}
    assert m["data"]["kind"] == "imagenet" and m["data"]["heldout_from"] == "train" and m["data"]["heldout_images"] == 5000
    mask = m["mask"]
    assert (mask["iterations"], mask["lr"], mask["l1_coeff"], mask["tv_coeff"], mask["tv_beta"]) == (300, 0.1, 1e-4, 1e-2, 3.0)
    assert (mask["mask_scale"], mask["mask_blur_sigma"], mask["blur_sigma"], mask["jitter"]) == (8, 5.0, 10.0, 4)
    assert mask["objective"] == "top5" and m["keypoints_mask"] == m["pointing_mask"] == {"objective": "target"}
    assert m["pointing_data"]["kind"] == "coco" and m["pointing_model"]["num_classes"] == 80
    assert m["keypoints_data"]["kind"] == "animal_parts" and m["keypoints_data"]["min_per_class"] == 10


def test_paper_config_validates_on_tiny_real_format_files(paper_files):
    """``validate --config paper.yaml``: the pretrained GoogLeNet is found and hash-checked, ImageNet val (+ boxes),
    the held-out annotated training images, COCO val2014 and the animal-parts keypoints are read, and each pass's
    model classifies its images (val/acc, val/pointing_acc, val/keypoints_acc)."""
    from replications.cli import run
    from replications.fong2017.experiments import FongReplication

    cli = run(FongReplication, "fong2017", args=["validate", "--config", "configs/fong2017/paper.yaml", *_overrides(paper_files)])
    module, metrics = cli.model, cli.trainer.callback_metrics
    for key in ("val/acc", "val/pointing_acc", "val/keypoints_acc"):
        assert key in metrics and 0.0 <= float(metrics[key]) <= 1.0, (key, dict(metrics))
    assert type(module.blackbox.net).__name__ == "GoogLeNet" and module.blackbox.net.fc.out_features == 1000
    assert module.pointing_model.net.fc.out_features == 80 and module.pointing_model is not module.blackbox
    datasets = module._datasets()
    assert {k: len(v) for k, v in datasets.items()} == {"test": 4, "heldout": 2, "pointing": 3, "keypoints": 11}
    assert module.pass_mask_configs["keypoints"].objective == "target" and module.mask_config.objective == "top5"
    assert module.mask_config.scaled(64)["jitter"] == 1  # 4 px at 224, scaled to the 64-px override


def test_paper_config_missing_weights_names_the_file(paper_files, monkeypatch):
    from replications.cli import run
    from replications.fong2017.experiments import FongReplication

    monkeypatch.setenv("SALIENCY_WEIGHTS", str(paper_files["imagenet"]))  # no weight file there
    monkeypatch.setenv("TORCH_HOME", str(paper_files["imagenet"]))
    with pytest.raises(FileNotFoundError, match=r"googlenet-[0-9a-f]{8}\.pth"):
        run(FongReplication, "fong2017", args=["validate", "--config", "configs/fong2017/paper.yaml", *_overrides(paper_files)])


def test_imagenet_pass_reads_boxes_and_the_heldout_training_split(paper_files):
    from lightning_modules.data.schema import collate_batch
    from replications.fong2017.data import main_datasets

    spec = {"kind": "imagenet", "root": str(paper_files["imagenet"]), "image_size": 30, "heldout_images": 3,
            "heldout_from": "train", "test_images": None, "batch_size": 2}
    ds = main_datasets(spec)
    assert len(ds["test"]) == 4 and len(ds["heldout"]) == 3
    batch = collate_batch([ds["test"][0], ds["heldout"][0]])
    assert batch["label"].tolist() == [1, 0] and batch["image"].shape == (2, 3, 30, 30)
    # val image 1: 0-based inclusive (10, 5, 39, 29) in 60x40 -> exclusive (10, 5, 40, 30), scaled to 30x30
    torch.testing.assert_close(batch["boxes"][0, 0], torch.tensor([5.0, 3.75, 20.0, 22.5]))
    val = main_datasets({**spec, "heldout_from": "val", "heldout_images": 1})
    assert len(val["test"]) == 3 and len(val["heldout"]) == 1
    with pytest.raises(ValueError, match="heldout_from"):
        main_datasets({**spec, "heldout_from": "test"})
    with pytest.raises(ValueError, match="asked for 9 test images"):
        main_datasets({**spec, "test_images": 9})


def test_animal_parts_loader_known_answers(tmp_path):
    """Points scaled with the image, the official selection (every part annotated; classes with > min_per_class
    images), validation images labelled from a labels file, clear errors."""
    from lightning_modules.data.animal_parts import AnimalPartsDataModule, read_part_points
    from lightning_modules.data.schema import collate_batch, validate_batch

    imnet, parts = tmp_path / "imagenet", tmp_path / "parts"
    (imnet).mkdir()
    (imnet / "LOC_synset_mapping.txt").write_text("".join(f"{w} x\n" for w in WNIDS[:3]))
    stems = [f"{WNIDS[1]}_{k}" for k in range(3)] + ["ILSVRC2012_val_00000007"]
    for s in stems[:3]:
        write_jpeg(imnet / "train" / WNIDS[1] / f"{s}.JPEG", 50, 100)
    write_jpeg(imnet / "val" / "ILSVRC2012_val_00000007.JPEG", 50, 100)
    write_animal_parts(parts, stems, eye=(10.0, 20.0), foot=(49.9, 99.5))
    (parts / "xml" / "foot" / f"{stems[2]}.xml").unlink()  # image 2 has no feet: dropped by require_all_parts
    labels = tmp_path / "val.txt"
    labels.write_text("ILSVRC2012_val_00000007.JPEG 2\n")
    assert read_part_points(parts / "xml" / "eye" / f"{stems[0]}.xml", "eye") == [(10.0, 20.0), (14.0, 20.0)]
    assert read_part_points(parts / "xml" / "eye" / f"{stems[0]}.xml", "foot") == []

    dm = AnimalPartsDataModule(parts, imnet, image_size=(40, 25), batch_size=8, val_labels_file=labels, min_per_class=0)
    dm.setup()
    batch = next(iter(dm.test_dataloader()))
    validate_batch(batch, num_classes=3)
    assert batch["label"].tolist() == [2, 1, 1] and batch["id"].tolist() == [0, 1, 2]  # stems sorted: ILSVRC... < n...
    # (10, 20) in a 50x100 image -> (5, 8) at 25x40; the foot at the border is clamped inside the image
    torch.testing.assert_close(batch["keypoints"]["eyes"][0], torch.tensor([[5.0, 8.0], [7.0, 8.0]]))
    assert (batch["keypoints"]["feet"][..., 0] < 25).all() and (batch["keypoints"]["feet"][..., 1] < 40).all()
    # the official selection: classes with more than min_per_class images (class 1 has 2, class 2 has 1)
    dm1 = AnimalPartsDataModule(parts, imnet, image_size=32, val_labels_file=labels, min_per_class=1)
    dm1.setup()
    assert [label for _, label, _ in dm1.eval_set.samples] == [1, 1]
    with pytest.raises(ValueError, match="val_labels_file"):
        AnimalPartsDataModule(parts, imnet, min_per_class=0).setup()
    with pytest.raises(FileNotFoundError, match="xml/eye"):
        AnimalPartsDataModule(tmp_path / "nothing", imnet).setup()
    collate_batch([dm.eval_set[0]])


def test_separate_pass_settings_need_their_data():
    from replications.fong2017.experiments import FongReplication

    with pytest.raises(ValueError, match="pointing_mask / pointing_model need pointing_data"):
        FongReplication(pointing_model={"name": "googlenet"})


@pytest.mark.slow
def test_paper_config_fit_runs_every_pass_on_tiny_files(paper_files, tmp_path):
    """``fit`` with the paper config (iterations and sizes cut to seconds): Table 1 on ImageNet with the held-out
    training images, the pointing game on COCO with its own 80-class model (segmentation masks, difficult flags),
    the eyes-vs-feet pass on the animal-parts keypoints; the report has each table."""
    from replications.cli import run
    from replications.fong2017.experiments import FongReplication

    cut = ["--model.mask.iterations", "2", "--model.mask.init_radii", "3", "--model.artifacts.images", "2",
           "--model.adversarial.images", "2", "--model.adversarial.max_iter", "1", "--model.adversarial.epochs", "1",
           "--model.adversarial.hidden", "16", "--model.benchmark.iterations", "1", "--model.benchmark.repeats", "1",
           "--model.benchmark.batch", "2", "--model.keypoints_data.limit", "4",
           "--model.smallest_box", "{level: 0.01, alphas: [0.0, 0.5]}",
           "--model.explainer_kwargs", "{blurred_circle_occlusion: {radius: 0.25, stride: 0.5}}"]
    run(FongReplication, "fong2017", args=["fit", "--config", "configs/fong2017/paper.yaml", *_overrides(paper_files), *cut])
    r = json.loads((tmp_path / "report" / "results.json").read_text())
    tables = r["tables"]
    assert "on coco" in r["tables"]["pointing_game"]["caption"]
    assert {row["method"] for row in tables["pointing_game"]["rows"]} >= {"Mask (ours)", "Centre baseline"}
    assert len(tables["keypoints"]["rows"]) == 7 + 1  # the methods + the paper's hamster row (no ground truth here)
    assert tables["mask_learning"]["rows"][0]["images"] == 4
    assert [(row["class"], row["images"]) for row in tables["keypoints_per_class"]["rows"]] == [(0, 4)]
    assert {c["id"] for c in r["claims"]} >= {"g_mask_eyes_over_feet", "h_mask_beats_center", "c_value_mask_best"}
