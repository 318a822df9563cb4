"""Paper-scale loaders (ImageNet val + boxes, VOC 2007, COCO val2014) on tiny files written here in the real on-disk
formats: JPEGs by PIL, ILSVRC / VOC XML, the devkit's meta.mat (scipy), a COCO instances JSON read by pycocotools.

Known answers: labels through the devkit's ILSVRC2012_ID mapping, boxes scaled to the resized image (and lying on
the bright pixels the test drew there), the pointing-game pairs and difficult flags of TorchRay's protocol, COCO
masks equal to pycocotools' own rasterisation."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_modules.data.schema import validate_batch

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------ writers
def write_jpeg(path, width, height, bright_boxes=()):
    """Black image with white rectangles at the given 0-based, exclusive (x0, y0, x1, y1) pixel boxes."""
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    for x0, y0, x1, y1 in bright_boxes:
        arr[y0:y1, x0:x1] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="JPEG", quality=95)


def write_voc_xml(path, filename, width, height, objects, database="The VOC2007 Database", folder="VOC2007"):
    """objects: (name, xmin, ymin, xmax, ymax, difficult) with 1-based inclusive coordinates, as VOC/ILSVRC write."""
    objs = "".join(
        f"""
	<object>
		<name>{name}</name>
		<pose>Unspecified</pose>
		<truncated>0</truncated>
		<difficult>{int(diff)}</difficult>
		<bndbox>
			<xmin>{x0}</xmin>
			<ymin>{y0}</ymin>
			<xmax>{x1}</xmax>
			<ymax>{y1}</ymax>
		</bndbox>
	</object>"""
        for name, x0, y0, x1, y1, diff in objects
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""<annotation>
	<folder>{folder}</folder>
	<filename>{filename}</filename>
	<source>
		<database>{database}</database>
	</source>
	<size>
		<width>{width}</width>
		<height>{height}</height>
		<depth>3</depth>
	</size>
	<segmented>0</segmented>{objs}
</annotation>
"""
    )


def write_devkit(root, synsets, ground_truth):
    """ILSVRC2012_devkit_t12/data/meta.mat (struct array 'synsets' as the devkit has it) + the ground-truth txt.
    synsets: (ILSVRC2012_ID, WNID, words, num_children)."""
    import scipy.io as sio

    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O"),
             ("children", "O"), ("wordnet_height", "O"), ("num_train_images", "O")]
    rows = np.array([(np.int16(i), w, words, "gloss", np.int16(nc), np.zeros(0), np.int16(0), np.int16(10))
                     for i, w, words, nc in synsets], dtype=dtype)
    data = root / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    sio.savemat(str(data / "meta.mat"), {"synsets": rows})
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{g}\n" for g in ground_truth))


# ------------------------------------------------------------------------------------------------ ImageNet
# devkit order deliberately differs from sorted-wnid order: the loader must map ILSVRC2012_ID -> wnid -> sorted index
WNIDS_SORTED = ["n01440764", "n01443537", "n01484850"]
DEVKIT = [(1, "n01484850", "great white shark", 0), (2, "n01440764", "tench, Tinca tinca", 0),
          (3, "n01443537", "goldfish", 0), (1001, "n00001740", "entity", 5)]  # a non-leaf synset: ignored


@pytest.fixture
def imagenet_flat(tmp_path):
    root = tmp_path / "imagenet"
    # image 1: 50x40, one box; image 2: 60x30, two boxes; image 3: 40x40, no XML. ILSVRC XML: 0-based inclusive.
    specs = {
        1: (50, 40, [("n01484850", 10, 5, 29, 24)]),
        2: (60, 30, [("n01440764", 0, 0, 19, 9), ("n01440764", 30, 10, 59, 29)]),
        3: (40, 40, None),
    }
    for n, (w, h, objs) in specs.items():
        stem = f"ILSVRC2012_val_{n:08d}"
        boxes = [(x0, y0, x1 + 1, y1 + 1) for _, x0, y0, x1, y1 in (objs or [])]
        write_jpeg(root / "val" / f"{stem}.JPEG", w, h, boxes)
        if objs is not None:
            write_voc_xml(root / "Annotations" / "CLS-LOC" / "val" / f"{stem}.xml", stem, w, h,
                          [(*o, 0) for o in objs], database="ILSVRC_2012", folder="val")
    write_devkit(root, DEVKIT, ground_truth=[1, 2, 3])  # image1: ID1 shark, image2: ID2 tench, image3: ID3 goldfish
    return root


def test_imagenet_flat_layout_devkit_labels_and_scaled_boxes(imagenet_flat):
    from lightning_modules.data.imagenet import ImageNetValDataModule

    dm = ImageNetValDataModule(imagenet_flat, image_size=(3, 112, 112), batch_size=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("validate")
    assert any("not 1000" in str(w.message) for w in caught), "a partial class list must be flagged"
    assert dm.wnids == WNIDS_SORTED
    batch = next(iter(dm.val_dataloader()))
    validate_batch(batch, num_classes=3, channels=3)
    assert batch["image"].shape == (3, 3, 112, 112)
    # shark -> sorted index 2, tench -> 0, goldfish -> 1 (devkit IDs 1, 2, 3)
    assert batch["label"].tolist() == [2, 0, 1]
    assert batch["id"].tolist() == [0, 1, 2]
    assert batch["orig_size"].tolist() == [[40, 50], [30, 60], [40, 40]]
    # XML (10, 5, 29, 24) inclusive 0-based -> (10, 5, 30, 25) exclusive -> scaled by (112/50, 112/40)
    expected0 = torch.tensor([10 * 112 / 50, 5 * 112 / 40, 30 * 112 / 50, 25 * 112 / 40])
    torch.testing.assert_close(batch["boxes"][0, 0], expected0)
    assert batch["box_labels"].tolist() == [[2, -1], [0, 0], [-1, -1]]
    torch.testing.assert_close(batch["boxes"][1, 1], torch.tensor([30 * 112 / 60, 10 * 112 / 30, 112.0, 112.0]))
    # the boxes sit on the white pixels the test drew: bright inside (away from the resampled edges), dark outside
    for b in range(2):
        inside = torch.zeros(112, 112, dtype=torch.bool)
        for (x0, y0, x1, y1), lab in zip(batch["boxes"][b].tolist(), batch["box_labels"][b].tolist()):
            if lab >= 0:
                inside[int(y0) + 3: int(y1) - 3, int(x0) + 3: int(x1) - 3] = True
        outside = torch.ones(112, 112, dtype=torch.bool)
        for (x0, y0, x1, y1), lab in zip(batch["boxes"][b].tolist(), batch["box_labels"][b].tolist()):
            if lab >= 0:
                outside[max(int(y0) - 3, 0): int(y1) + 3, max(int(x0) - 3, 0): int(x1) + 3] = False
        grey = batch["image"][b].mean(0)
        assert grey[inside].min() > 0.9 and grey[outside].max() < 0.1
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0


def test_imagenet_flat_layout_with_caffe_labels_file(imagenet_flat, tmp_path):
    from lightning_modules.data.imagenet import ImageNetValDataModule

    (imagenet_flat / "LOC_synset_mapping.txt").write_text("".join(f"{w} name {i}\n" for i, w in enumerate(WNIDS_SORTED)))
    labels = tmp_path / "val.txt"
    labels.write_text("ILSVRC2012_val_00000001.JPEG 1\nILSVRC2012_val_00000002.JPEG 2\nILSVRC2012_val_00000003.JPEG 0\n")
    dm = ImageNetValDataModule(imagenet_flat, image_size=64, batch_size=4, labels_file=labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm.setup()
    assert next(iter(dm.test_dataloader()))["label"].tolist() == [1, 2, 0]
    bad = tmp_path / "bad.txt"
    bad.write_text("ILSVRC2012_val_00000001.JPEG 1\n")
    with pytest.raises(ValueError, match="no label for 2 images"):
        ImageNetValDataModule(imagenet_flat, labels_file=bad).setup()


def test_imagenet_class_folders_with_val_xml_and_synset_mapping(tmp_path):
    from lightning_modules.data.imagenet import ImageNetValDataModule

    root = tmp_path / "in"
    (root).mkdir()
    # a 4-class mapping file: the folders hold only 2 of them, indices must come from the file
    mapping = ["n01440764", "n01443537", "n01484850", "n01491361"]
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} some words\n" for w in mapping))
    write_jpeg(root / "val" / "n01484850" / "ILSVRC2012_val_00000007.JPEG", 32, 32, [(0, 0, 16, 16)])
    write_jpeg(root / "val" / "n01491361" / "ILSVRC2012_val_00000004.JPEG", 32, 32, [(8, 8, 32, 32)])
    # boxes from ILSVRC2012_bbox_val_v3.tgz unpacked into val/
    write_voc_xml(root / "val" / "ILSVRC2012_val_00000007.xml", "ILSVRC2012_val_00000007", 32, 32, [("n01484850", 0, 0, 15, 15, 0)])
    write_voc_xml(root / "val" / "ILSVRC2012_val_00000004.xml", "ILSVRC2012_val_00000004", 32, 32, [("n01491361", 8, 8, 31, 31, 0)])
    dm = ImageNetValDataModule(root, image_size=32, batch_size=2, require_boxes=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm.setup()
    batch = next(iter(dm.val_dataloader()))
    assert batch["label"].tolist() == [2, 3]  # folder order n01484850, n01491361 -> mapping indices
    torch.testing.assert_close(batch["boxes"][:, 0], torch.tensor([[0.0, 0, 16, 16], [8.0, 8, 32, 32]]))
    assert batch["box_labels"].tolist() == [[2], [3]]


def test_imagenet_heldout_training_subset_is_seeded_and_annotated(tmp_path):
    from lightning_modules.data.imagenet import ImageNetValDataModule

    root = tmp_path / "in"
    write_jpeg(root / "val" / "n01440764" / "ILSVRC2012_val_00000001.JPEG", 20, 20)
    write_jpeg(root / "val" / "n01443537" / "ILSVRC2012_val_00000002.JPEG", 20, 20)
    annotated = []
    for wnid in ("n01440764", "n01443537"):
        for k in range(1, 4):
            stem = f"{wnid}_{k}"
            write_jpeg(root / "train" / wnid / f"{stem}.JPEG", 24, 24, [(2, 2, 12, 12)])
            if k != 3:  # every third training image has no box: never chosen
                write_voc_xml(root / "Annotations" / "CLS-LOC" / "train" / wnid / f"{stem}.xml", stem, 24, 24,
                              [(wnid, 2, 2, 11, 11, 0)], database="ILSVRC_2012", folder=wnid)
                annotated.append(stem)

    def chosen(seed):
        dm = ImageNetValDataModule(root, image_size=24, heldout_size=3, seed=seed, batch_size=8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dm.setup("fit")
        return [p.stem for p, _, _ in dm.heldout_set.samples], next(iter(dm.train_dataloader()))

    names, batch = chosen(0)
    assert len(names) == 3 and set(names) <= set(annotated)
    assert chosen(0)[0] == names, "same seed, same subset"
    assert any(chosen(s)[0] != names for s in range(1, 6)), "the subset depends on the seed"
    assert batch["boxes"].shape == (3, 1, 4) and (batch["box_labels"] >= 0).all()
    assert batch["label"].tolist() == [0 if n.startswith("n01440764") else 1 for n in names]
    with pytest.raises(ValueError, match="only 4 annotated training images"):
        ImageNetValDataModule(root, heldout_size=5).setup("fit")


def test_imagenet_missing_root_names_the_layout(tmp_path):
    from lightning_modules.data.imagenet import ImageNetValDataModule

    with pytest.raises(FileNotFoundError) as err:
        ImageNetValDataModule(tmp_path / "nowhere").setup()
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and "<root>/val/<wnid>/" in msg and "ILSVRC2012_val_XXXXXXXX.JPEG" in msg
    assert "Nothing is downloaded" in msg


def test_imagenet_require_boxes_flags_images_without_xml(imagenet_flat):
    from lightning_modules.data.imagenet import ImageNetValDataModule

    with pytest.raises(FileNotFoundError, match="1 validation images have no XML boxes"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ImageNetValDataModule(imagenet_flat, require_boxes=True).setup()


# ------------------------------------------------------------------------------------------------ VOC 2007
def _voc_tree(tmp_path):
    voc = tmp_path / "voc" / "VOCdevkit" / "VOC2007"
    images = {
        # id: (w, h, [(name, xmin, ymin, xmax, ymax, difficult)])  1-based inclusive
        "000001": (80, 60, [("dog", 11, 11, 40, 50, 0), ("person", 51, 1, 80, 60, 0), ("person", 1, 1, 5, 5, 1)]),
        "000002": (50, 50, [("cat", 1, 1, 50, 50, 1)]),  # only a difficult box: the (image, cat) pair is skipped
        "000004": (64, 48, [("car", 1, 25, 32, 48, 0), ("cat", 33, 1, 64, 24, 0), ("car", 41, 31, 60, 44, 0)]),
    }
    for image_id, (w, h, objs) in images.items():
        write_jpeg(voc / "JPEGImages" / f"{image_id}.jpg", w, h, [(x0 - 1, y0 - 1, x1, y1) for _, x0, y0, x1, y1, _ in objs])
        write_voc_xml(voc / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", w, h, objs)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "test.txt").write_text("000001\n000002\n000004\n")
    # TorchRay's difficult-list format: name + 20 tab-separated flags (VOC class order)
    from lightning_modules.data.voc import VOC_CLASSES

    def row(name, difficult_classes):
        return name + "".join("\t" + str(int(c in difficult_classes)) for c in VOC_CLASSES) + "\n"

    difficult = tmp_path / "pointing_game_ebp_voc07_difficult.txt"
    difficult.write_text(row("000001", {"person"}) + row("000002", set()) + row("000004", {"car", "cat"}))
    return tmp_path / "voc", difficult


def test_voc_files_are_real_format_for_torchvision(tmp_path):
    """Cross-check of the test's writer: torchvision's own VOCDetection reads the tree."""
    from torchvision.datasets import VOCDetection

    root, _ = _voc_tree(tmp_path)
    ds = VOCDetection(str(root), year="2007", image_set="test")
    img, target = ds[2]
    assert img.size == (64, 48) and [o["name"] for o in target["annotation"]["object"]] == ["car", "cat", "car"]


def test_voc_pointing_pairs_masks_and_difficult_flags(tmp_path):
    from lightning_modules.data.voc import VOC_CLASSES, VOC2007DataModule

    root, difficult = _voc_tree(tmp_path)
    dm = VOC2007DataModule(root, image_size=32, batch_size=8, difficult_list=difficult)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    validate_batch(batch, num_classes=20)
    c = VOC_CLASSES.index
    # pairs: (img0, dog), (img0, person), (img2, car), (img2, cat); (img1, cat) skipped (all boxes difficult)
    assert batch["label"].tolist() == [c("dog"), c("person"), c("car"), c("cat")]
    assert batch["image_index"].tolist() == [0, 0, 2, 2]
    assert batch["id"].tolist() == [0, 1, 2, 3]
    assert batch["difficult"].tolist() == [False, True, True, True]
    assert batch["orig_size"].tolist() == [[60, 80], [60, 80], [48, 64], [48, 64]]
    # every object's box, scaled (img0: 3 boxes; img2: 3 boxes), padded to N = 3
    assert batch["box_labels"].tolist()[0] == [c("dog"), c("person"), c("person")]
    torch.testing.assert_close(batch["boxes"][0, 0], torch.tensor([10 * 32 / 80, 10 * 32 / 60, 40 * 32 / 80, 50 * 32 / 60]))
    # mask of the (img2, car) pair: union of the two car boxes (pixels [0:32, 24:48] and [40:60, 30:44] of 64x48),
    # resized 2x / 1.5x down; check against the union rasterised directly at 32x32 from the scaled boxes.
    from lightning_modules.data.imagenet import boxes_to_mask

    car_mask = batch["mask"][2, 0]
    assert car_mask.dtype == torch.bool
    ref = boxes_to_mask(batch["boxes"][2][batch["box_labels"][2] == c("car")], 32, 32)[0]
    assert (car_mask != ref).float().mean() < 0.03  # nearest resampling vs exact rasterisation: boundary pixels only
    assert car_mask[20, 5] and car_mask[27, 25] and not car_mask[5, 25], "inside both car boxes, outside = the cat"
    # the mask is the class's region only
    assert not (batch["mask"][3, 0] & ref).any()
    # image-level multi-hot
    assert batch["multilabel"][0].nonzero().flatten().tolist() == [c("dog"), c("person")]


def test_voc_without_difficult_list_and_images_mode(tmp_path):
    from lightning_modules.data.voc import VOC_CLASSES, VOC2007DataModule

    root, _ = _voc_tree(tmp_path)
    voc = root / "VOCdevkit" / "VOC2007"
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("000004\n000001\n")
    dm = VOC2007DataModule(voc, image_size=(40, 40), batch_size=8)  # root may be VOC2007 itself
    dm.setup("fit")
    assert not next(iter(dm.val_dataloader()))["difficult"].any()
    train = next(iter(dm.train_dataloader()))
    assert "mask" not in train and train["image"].shape == (2, 3, 40, 40)
    # images mode: label = the class of the largest non-difficult object (img 000001: dog 30x40 < person 30x60)
    by_index = dict(zip(train["image_index"].tolist(), train["label"].tolist()))
    assert by_index[1] == VOC_CLASSES.index("person")


def test_voc_missing_root_and_bad_difficult_list(tmp_path):
    from lightning_modules.data.voc import VOC2007DataModule

    with pytest.raises(FileNotFoundError, match=r"VOCdevkit/VOC2007/JPEGImages") as err:
        VOC2007DataModule(tmp_path / "none").setup()
    assert "Nothing is downloaded" in str(err.value)
    root, _ = _voc_tree(tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_text("000001\t0\t1\n")
    with pytest.raises(ValueError, match="20 0/1 flags"):
        VOC2007DataModule(root, difficult_list=bad).setup()
    with pytest.raises(FileNotFoundError, match="pointing_game_ebp_voc07_difficult.txt"):
        VOC2007DataModule(root, difficult_list=tmp_path / "pointing_game_ebp_voc07_difficult_missing.txt").setup()


# ------------------------------------------------------------------------------------------------ COCO
def _coco_tree(tmp_path):
    root = tmp_path / "coco"
    images = [
        {"id": 42, "file_name": "COCO_val2014_000000000042.jpg", "width": 64, "height": 48},
        {"id": 73, "file_name": "COCO_val2014_000000000073.jpg", "width": 40, "height": 40},
        {"id": 74, "file_name": "COCO_val2014_000000000074.jpg", "width": 40, "height": 40},  # no annotations
    ]
    # categories with the real, gappy COCO ids: person=1, car=3, dog=18 -> indices 0, 1, 2
    categories = [{"id": 18, "name": "dog", "supercategory": "animal"},
                  {"id": 1, "name": "person", "supercategory": "person"},
                  {"id": 3, "name": "car", "supercategory": "vehicle"}]
    annotations = [
        # a polygon square covering pixels [8, 24) x [4, 20) of image 42: dog
        {"id": 1, "image_id": 42, "category_id": 18, "iscrowd": 0, "area": 256.0, "bbox": [8, 4, 16, 16],
         "segmentation": [[8, 4, 24, 4, 24, 20, 8, 20]]},
        # a triangle: person
        {"id": 2, "image_id": 42, "category_id": 1, "iscrowd": 0, "area": 200.0, "bbox": [40, 10, 20, 30],
         "segmentation": [[40, 10, 60, 40, 40, 40]]},
        # a second dog
        {"id": 3, "image_id": 42, "category_id": 18, "iscrowd": 0, "area": 64.0, "bbox": [50, 0, 8, 8],
         "segmentation": [[50, 0, 58, 0, 58, 8, 50, 8]]},
        # a crowd region in uncompressed RLE: car in image 73 (column-major counts)
        {"id": 4, "image_id": 73, "category_id": 3, "iscrowd": 1, "area": 400.0, "bbox": [10, 10, 20, 20],
         "segmentation": {"size": [40, 40], "counts": [410] + [20, 20] * 19 + [20, 410]}},
    ]
    for im in images:
        write_jpeg(root / "val2014" / im["file_name"], im["width"], im["height"])
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val2014.json").write_text(json.dumps({
        "info": {"description": "tiny"}, "licenses": [], "images": images,
        "annotations": annotations, "categories": categories,
    }))
    difficult = tmp_path / "pointing_game_ebp_coco_difficult.txt"
    flags = lambda on: "\t".join("1" if k in on else "0" for k in range(3))  # noqa: E731
    difficult.write_text(f"COCO_val2014_000000000042\t{flags({0})}\nCOCO_val2014_000000000073\t{flags(set())}\n")
    return root, difficult


def test_coco_pairs_and_masks_match_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    from lightning_modules.data.coco import COCOPointingDataModule

    root, difficult = _coco_tree(tmp_path)
    dm = COCOPointingDataModule(root, image_size=(24, 32), batch_size=8, difficult_list=difficult)
    dm.setup("validate")
    assert dm.num_classes == 3 and dm.eval_set.classes == ("person", "car", "dog")
    batch = next(iter(dm.val_dataloader()))
    validate_batch(batch, num_classes=3)
    # pairs: (42, person=0), (42, dog=2), (73, car=1); image 74 has no annotations: skipped
    assert batch["label"].tolist() == [0, 2, 1]
    assert batch["image_index"].tolist() == [0, 0, 1]
    assert batch["difficult"].tolist() == [True, False, False]
    assert batch["box_labels"].tolist() == [[2, 0, 2], [2, 0, 2], [1, -1, -1]]
    torch.testing.assert_close(batch["boxes"][0, 0], torch.tensor([8 * 32 / 64, 4 * 24 / 48, 24 * 32 / 64, 20 * 24 / 48]))
    # masks: pycocotools' union of the class's annotations, resized nearest (exactly 2x down for image 42)
    coco = COCO(str(root / "annotations" / "instances_val2014.json"))
    dog = np.zeros((48, 64), dtype=bool)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=42, catIds=[18])):
        dog |= coco.annToMask(ann).astype(bool)
    torch.testing.assert_close(batch["mask"][1, 0], torch.from_numpy(dog[::2, ::2]))
    assert batch["mask"][1, 0].sum() > 0 and not (batch["mask"][0, 0] & batch["mask"][1, 0]).any()
    car = torch.from_numpy(coco.annToMask(coco.loadAnns([4])[0]).astype(bool))
    assert car.sum() == 400 and car[10:30, 10:30].all()  # the RLE decodes to the 20x20 square
    assert batch["mask"][2, 0].shape == (24, 32)


def test_coco_missing_root_and_bad_json(tmp_path):
    from lightning_modules.data.coco import COCOPointingDataModule

    with pytest.raises(FileNotFoundError, match=r"instances_val2014.json") as err:
        COCOPointingDataModule(tmp_path / "none").setup()
    assert "<root>/val2014/" in str(err.value)
    root, _ = _coco_tree(tmp_path)
    (root / "annotations" / "instances_val2014.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read COCO annotations"):
        COCOPointingDataModule(root).setup()



def test_pointing_datamodules_warn_about_images_missing_from_the_difficult_list(tmp_path):
    """VOC and COCO share PointingGameDataModule.warn_unlisted: images missing from the difficult list are counted
    as not difficult, and the warning says how many and points at the caller of ``setup``."""
    from lightning_modules.data.coco import COCOPointingDataModule
    from lightning_modules.data.voc import VOC2007DataModule

    root, difficult = _voc_tree(tmp_path / "v")
    difficult.write_text("".join(difficult.read_text().splitlines(keepends=True)[:-1]))  # 000004 unlisted
    with pytest.warns(UserWarning, match="1 of 3 images are not in the difficult list") as rec:
        VOC2007DataModule(root, image_size=32, batch_size=8, difficult_list=difficult).setup("test")
    assert [w.filename for w in rec if "difficult list" in str(w.message)] == [__file__]
    root, difficult = _coco_tree(tmp_path / "c")
    difficult.write_text(difficult.read_text().splitlines(keepends=True)[0])  # image 73 unlisted
    with pytest.warns(UserWarning, match="1 of 2 images are not in the difficult list") as rec:
        COCOPointingDataModule(root, image_size=(24, 32), batch_size=8, difficult_list=difficult).setup("validate")
    assert [w.filename for w in rec if "difficult list" in str(w.message)] == [__file__]

def test_box_conventions_known_answers():
    """VOC XML is 1-based inclusive, ILSVRC XML 0-based inclusive; the schema is 0-based with exclusive x1/y1."""
    from lightning_modules.data.imagenet import boxes_to_mask, ilsvrc_boxes_to_pixels, voc_boxes_to_pixels

    assert voc_boxes_to_pixels([(1, 1, 10, 5)]).tolist() == [[0, 0, 10, 5]]
    assert ilsvrc_boxes_to_pixels([(0, 0, 9, 4)]).tolist() == [[0, 0, 10, 5]]
    # out-of-range coordinates (seen in real annotation files) are clamped to the image written in the XML
    assert ilsvrc_boxes_to_pixels([(0, 2, 50, 40)], width=50, height=40).tolist() == [[0, 2, 50, 40]]
    m = boxes_to_mask(torch.tensor([[0.0, 0, 10, 5], [8, 3, 12, 8]]), 10, 16)
    assert m.shape == (1, 10, 16) and int(m.sum()) == 10 * 5 + 4 * 5 - 2 * 2
    assert m[0, 4, 9] and not m[0, 5, 0] and m[0, 7, 11] and not m[0, 7, 12]


def test_loader_batches_feed_a_model_at_its_data_config_size(tmp_path):
    """The paper configs pass the model's input size to the loader: batches go straight into the model."""
    from lightning_modules.data.voc import VOC2007DataModule
    from lightning_modules.models import load_model

    model, cfg = load_model("squeezenet1_1", num_classes=20)
    root, difficult = _voc_tree(tmp_path)
    dm = VOC2007DataModule(root, image_size=cfg.input_size, batch_size=4, difficult_list=difficult)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (4, 3, 224, 224) and batch["mask"].shape == (4, 1, 224, 224)
    with torch.no_grad():
        assert model(batch["image"]).shape == (4, 20)
