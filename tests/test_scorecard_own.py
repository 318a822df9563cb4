"""The scorecard on a user's own model and data by name (issue #41): ``--model timm/test_resnet`` with its "published"
weights (random, written to a tmp weights folder as the file the loader looks for) and ``--data imagenet
--data-root DIR`` (a tiny ILSVRC validation layout with XML boxes): the object-ground-truth protocols are scored, the
evidence ones listed as not run; bad input fails early and clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_modules.scorecard import verify_scorecard
from replications.scorecard import main

MODEL = "timm/test_resnet"  # timm's tiny test network (160 px input, 1,000 classes)
WNIDS = [f"n{i:08d}" for i in range(1000)]


def _jpeg(path, width, height, box):
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="JPEG", quality=95)


def _xml(path, stem, width, height, objects):
    """ILSVRC XML: objects ``(wnid, xmin, ymin, xmax, ymax)``, 0-based inclusive."""
    objs = "".join(f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
                   f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>" for n, a, b, c, d in objects)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><folder>val</folder><filename>{stem}</filename><size><width>{width}</width>"
                    f"<height>{height}</height><depth>3</depth></size>{objs}</annotation>")


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory):
    """Class folders ``val/<wnid>/*.JPEG``, XML boxes under ``Annotations/CLS-LOC/val``, the 1,000-class order in
    ``LOC_synset_mapping.txt``; image 7 has no XML (skipped: no box of its class)."""
    root = tmp_path_factory.mktemp("ilsvrc")
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} class {i}\n" for i, w in enumerate(WNIDS)))
    rng = np.random.default_rng(0)
    for n in range(1, 9):
        wnid = WNIDS[n % 3]
        stem = f"ILSVRC2012_val_{n:08d}"
        w, h = 48 + 4 * n, 40
        x0, y0 = int(rng.integers(0, 20)), int(rng.integers(0, 16))
        _jpeg(root / "val" / wnid / f"{stem}.JPEG", w, h, (x0, y0, x0 + 20, y0 + 20))
        if n != 7:
            _xml(root / "Annotations" / "CLS-LOC" / "val" / f"{stem}.xml", stem, w, h,
                 [(wnid, x0, y0, x0 + 19, y0 + 19), (WNIDS[(n + 1) % 3], 0, 0, 5, 5)])
    return root


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """Random weights of timm's test_resnet saved as the pretrained file the loader looks for."""
    import timm

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet", pretrained=False).state_dict(), d / "test_resnet.pth")
    return d


def _run(capsys, *args):
    rc = main(["--explainer", "gradient", "--name", "my_gradient", "--profile", "smoke", "--cache-dir", "none",
               "--threads", "1", *args])
    return rc, capsys.readouterr().err


def test_own_model_and_imagenet_by_name(imagenet_root, weights_dir, tmp_path, capsys):
    out = tmp_path / "card"
    rc, err = _run(capsys, "--model", MODEL, "--weights-dir", str(weights_dir), "--data", "imagenet",
                   "--data-root", str(imagenet_root), "--images", "6", "--out", str(out))
    assert rc == 0, err
    r = json.loads((out / "results.json").read_text())
    assert r["setting"]["model"] == MODEL and r["n_images"] == 6
    # the first 6 images in the data module's order that have a box of their class (image 7 has no XML)
    assert r["own_data"]["n_images"] == 6 and r["own_data"]["image_size"] == [160, 160]
    assert r["benchmark"]["image_size"] == 160 and r["labels"] == [0, 0, 1, 1, 2, 2]
    # object ground truth only: the object protocols scored, the evidence ones (and those without their data) not run
    assert r["protocols_run"] == ["pointing_object_all", "localisation_object"]
    for p in ("pointing_object_all", "localisation_object"):
        assert len(r["values"][p]["my_gradient"]) == 6 and len(r["values"][p]["oracle"]) == 6
        assert r["derived"][p]["status"] in ("valid", "not valid")
    # the oracle (the label's boxes) hits every time and localises every box
    assert r["values"]["pointing_object_all"]["oracle"] == [1.0] * 6
    assert r["values"]["localisation_object"]["oracle"] == [0.0] * 6
    nr = r["not_run"]
    for p in ("deletion", "insertion", "suppression", "morf", "lerf", "cascading_randomisation",
              "independent_randomisation", "fragility_topk", "fragility_centre"):
        assert "no evidence_mask" in nr[p] and "oracle" in nr[p], p
    assert "no evidence_mask" in nr["pointing_evidence_all"] and "evidence_boxes" in nr["localisation_evidence"]
    assert "no difficult" in nr["pointing_object_difficult"]
    assert "--with roar" in nr["roar"] and "--with data_randomisation" in nr["data_randomisation"]
    assert r["builtin_methods"] == ["gradient", "gradcam"]
    readme = (out / "README.md").read_text()
    assert "Data: `--data imagenet` (6 images" in readme and "1 skipped without a box" in readme
    assert "- `deletion`: not run: the data has no evidence_mask" in readme
    assert "Randomisation (Adebayo)" not in readme and "Fragility (Ghorbani)" not in readme  # notes of protocols run only
    assert verify_scorecard(out, example=None) == []


@pytest.mark.parametrize("args, message", [
    (["--model", MODEL, "--data", "imagenett", "--data-root", "x"], ["unknown data name", "known: imagenet"]),
    (["--model", MODEL, "--data", "voc2007", "--data-root", "x"], ["not read by name", "multi-label", "imagenet"]),
    (["--model", MODEL, "--data", "coco", "--data-root", "x"], ["not read by name", "multi-label"]),
    (["--model", MODEL, "--data", "imagenet"], ["--data imagenet needs --data-root DIR", "Annotations/CLS-LOC"]),
    (["--data", "imagenet", "--data-root", "x"], ["scenes_v2_vgg is a shipped model", "--model NAME"]),
    (["--model", "scenes_v2_resnet", "--data", "imagenet", "--data-root", "x"], ["scenes_v2_resnet is a shipped model"]),
    (["--model", MODEL], ["is not a shipped model", "--data imagenet --data-root DIR"]),
    (["--data-root", "x"], ["--data-root goes with a data name"]),
])
def test_bad_input_fails_before_any_work(args, message, capsys):
    rc, err = _run(capsys, *args)
    assert rc == 2
    for m in message:
        assert m in err, (m, err)


def test_missing_weights_name_the_file_and_the_fix(imagenet_root, tmp_path, capsys):
    rc, err = _run(capsys, "--model", MODEL, "--weights-dir", str(tmp_path), "--data", "imagenet",
                   "--data-root", str(imagenet_root))
    assert rc == 2
    assert "pretrained weights not found" in err and "test_resnet.pth" in err
    assert f"put it in {tmp_path} (the --weights-dir given)" in err


def test_a_root_without_the_layout_names_it(weights_dir, tmp_path, capsys):
    rc, err = _run(capsys, "--model", MODEL, "--weights-dir", str(weights_dir), "--data", "imagenet",
                   "--data-root", str(tmp_path / "nowhere"))
    assert rc == 2
    assert str(tmp_path / "nowhere") in err and "<root>/val/<wnid>/" in err and "ILSVRC2012_val_XXXXXXXX.JPEG" in err


def test_a_class_order_that_does_not_match_the_model_is_refused(imagenet_root, weights_dir, tmp_path, capsys):
    root = tmp_path / "three_classes"
    for p in (imagenet_root / "val").rglob("*.JPEG"):
        (root / "val" / p.parent.name).mkdir(parents=True, exist_ok=True)
        (root / "val" / p.parent.name / p.name).write_bytes(p.read_bytes())
    with pytest.warns(UserWarning, match="not 1000"):
        rc, err = _run(capsys, "--model", MODEL, "--weights-dir", str(weights_dir), "--data", "imagenet",
                       "--data-root", str(root))
    assert rc == 2 and "3 classes but the model has 1000 outputs" in err and "LOC_synset_mapping.txt" in err
