"""Bad input never yields a number: every public entry point fails before any work with an ``InputError`` that
names the argument, what was expected, what was got and the fix (lightning_modules.validation)."""

from __future__ import annotations

import gzip
import os
import warnings

import pytest
import torch

from lightning_modules.explainers import create_explainer, list_explainers
from lightning_modules.metrics import (
    CenterOfMassShift, DeletionAUC, InsertionAUC, KeypointIntensity, MapSimilarity, PixelPerturbation, PointingGame,
    RankCorrelation, SmallestSuppressingBox, TopKIntersection, WeakLocalisation,
)
from lightning_modules.models import load_model
from lightning_modules.validation import (
    DataRootError, InputError, check_images, check_report_destination, check_targets, resolve_data_path,
)

K = 10


@pytest.fixture(scope="module")
def model():
    m, _ = load_model("scenes_cnn", num_classes=K)  # untrained: the checks never reach a forward pass
    return m


class ForwardCounter:
    def __init__(self, model):
        self.n = 0
        self.handle = model.register_forward_hook(self)

    def __call__(self, *_):
        self.n += 1


def _good(b: int = 2, size: int = 64):
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, 3, size, size, generator=g), torch.tensor([1, 2][:b])


#: the four bad inputs every explainer and every image-taking metric must reject, with the words of the fix
BAD = {
    "0..255 pixels": (lambda x, t: (x * 255, t), r"divide by 255"),
    "NaN": (lambda x, t: (x.masked_fill(x > 0.9, float("nan")), t), r"got NaN values"),
    "empty batch": (lambda x, t: (x[:0], t[:0]), r"non-empty batch.*Fix: skip empty batches"),
    "target out of range": (lambda x, t: (x, torch.tensor([1, K])), r"num_classes=10.*out of range.*Fix:"),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("name", list_explainers())
def test_every_explainer_rejects_bad_input_before_any_work(model, name, case):
    make_bad, message = BAD[case]
    x, t = make_bad(*_good())
    counter = ForwardCounter(model)
    try:
        with pytest.raises(InputError, match=message) as err:
            create_explainer(name)(model, x, t)
    finally:
        counter.handle.remove()
    assert "Fix:" in str(err.value)
    assert counter.n == 0, f"{name} ran {counter.n} forward passes before rejecting {case}"


def _image_metric_calls(model):
    """(name, metric, call(x, maps, t)) for every metric that takes a model and images."""
    return [
        ("DeletionAUC", DeletionAUC(), lambda m, x, h, t: m.update(model, x, h, t)),
        ("InsertionAUC", InsertionAUC(), lambda m, x, h, t: m.update(model, x, h, t)),
        ("PixelPerturbation", PixelPerturbation(), lambda m, x, h, t: m.update(model, x, h, t)),
        ("SmallestSuppressingBox", SmallestSuppressingBox(), lambda m, x, h, t: m.update(model, x, h, t)),
    ]


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("metric_index", range(4))
def test_every_image_metric_rejects_bad_input_before_any_work(model, metric_index, case):
    make_bad, message = BAD[case]
    name, metric, call = _image_metric_calls(model)[metric_index]
    x, t = make_bad(*_good())
    maps = torch.rand(x.shape[0], 1, *x.shape[-2:])
    counter = ForwardCounter(model)
    try:
        with pytest.raises(InputError, match=message):
            call(metric, x, maps, t)
    finally:
        counter.handle.remove()
    assert counter.n == 0, f"{name} ran {counter.n} forward passes before rejecting {case}"


def _map_metric_calls():
    """(name, call(maps, targets)) for the metrics that take maps (and targets where they have them)."""
    def pointing(h, t):
        masks = torch.zeros(h.shape[0], 1, *h.shape[-2:], dtype=torch.bool)
        masks[..., :4, :4] = True
        PointingGame(num_classes=K).update(h, t, masks=masks)

    def localisation(h, t):
        b = h.shape[0]
        boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0]]).expand(b, 1, 4)
        WeakLocalisation(num_classes=K).update(h, t, boxes, t[:, None].clamp(0, K - 1))

    def keypoints(h, t):
        KeypointIntensity(names=("eyes",), num_classes=K).update(h, {"eyes": torch.full((h.shape[0], 1, 2), 3.0)}, t)

    def pair(cls):
        return lambda h, t: cls().update(h, h.clone())

    return [("PointingGame", pointing, True), ("WeakLocalisation", localisation, True), ("KeypointIntensity", keypoints, True),
            ("MapSimilarity", pair(MapSimilarity), False), ("TopKIntersection", lambda h, t: TopKIntersection(k=5).update(h, h.clone()), False),
            ("RankCorrelation", pair(RankCorrelation), False), ("CenterOfMassShift", pair(CenterOfMassShift), False)]


MAP_BAD = {
    "NaN": (lambda h, t: (h.masked_fill(h > 0.9, float("nan")), t), r"got NaN or Inf values"),
    "empty batch": (lambda h, t: (h[:0], t[:0]), r"non-empty batch.*Fix: skip empty batches"),
    "target out of range": (lambda h, t: (h, torch.tensor([1, K])), r"num_classes=10.*out of range.*Fix:"),
}


@pytest.mark.parametrize("metric_index,case", [(i, c) for i, (_, _, has_targets) in enumerate(_map_metric_calls())
                                              for c in MAP_BAD if has_targets or c != "target out of range"])
def test_every_map_metric_rejects_bad_maps_and_targets(metric_index, case):
    name, call, _ = _map_metric_calls()[metric_index]
    make_bad, message = MAP_BAD[case]
    h, t = make_bad(torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(1)), torch.tensor([1, 2]))
    with pytest.raises(InputError, match=message):
        call(h, t)


# ------------------------------------------------------------------------------------------ images and targets
def test_images_of_the_wrong_kind_name_the_fix(model):
    x, t = _good()
    e = create_explainer("gradient")
    with pytest.raises(InputError, match=r"torch.float32.*got torch.float64.*Fix: images.to\(torch.float32\)"):
        e(model, x.double(), t)
    with pytest.raises(InputError, match=r"got torch.uint8.*images.float\(\) / 255"):
        e(model, (x * 255).to(torch.uint8), t)
    with pytest.raises(InputError, match=r"3 channels, got 1.*Fix: grey -> RGB"):
        e(model, x[:, :1], t)
    with pytest.raises(InputError, match=r"4-D.*images.unsqueeze\(0\)"):
        e(model, x[0], t[:1])
    with pytest.raises(InputError, match=r"Fix: drop the Normalize transform"):
        e(model, x * 2 - 1, t)
    with pytest.raises(InputError, match=r"large enough for the model's layers.*got 2x2.*Fix: resize"):
        e(model, torch.rand(2, 3, 2, 2), t)
    mnist, _ = load_model("mnist_cnn")
    with pytest.raises(InputError, match=r"28x28 images.*got 32x32.*Resize\(\(28, 28\)\)"):
        create_explainer("gradient")(mnist, torch.rand(1, 1, 32, 32), 0)


def test_targets_of_the_wrong_kind_name_the_fix(model):
    x, _ = _good()
    e = create_explainer("gradient")
    with pytest.raises(InputError, match=r"targets: expected 2 class indices, got None.*argmax"):
        e(model, x, None)
    with pytest.raises(InputError, match=r"got a torch.float32 tensor.*targets.long\(\)"):
        e(model, x, torch.tensor([1.0, 2.0]))
    with pytest.raises(InputError, match=r"got the float 1.0"):
        e(model, x, 1.0)
    with pytest.raises(InputError, match=r"values in \[-1, 1\]"):
        e(model, x, torch.tensor([-1, 1]))
    with pytest.raises(InputError, match=r"2 entries.*got 3"):
        e(model, x, torch.tensor([1, 2, 3]))
    with pytest.raises(InputError, match=r"argmax\(1\)"):
        e(model, x, torch.eye(K)[:2].long())
    assert torch.equal(check_targets(3, 2, K), torch.tensor([3, 3]))  # an int is broadcast


def test_input_error_is_a_value_and_type_error():
    with pytest.raises(ValueError):
        check_images(torch.full((1, 3, 4, 4), 2.0))
    with pytest.raises(TypeError):
        check_images(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    err = pytest.raises(InputError, check_images, torch.full((1, 3, 4, 4), 255.0)).value
    assert (err.argument, err.fix.startswith("divide by 255")) == ("images", True)


def test_one_host_sync_per_image_check(monkeypatch):
    calls = []
    real = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: calls.append(1) or real(self))
    check_images(torch.rand(4, 3, 8, 8))
    assert len(calls) == 1


# ------------------------------------------------------------------------------------------ repeated sample ids
def test_repeated_ids_with_different_images_are_refused_padding_repeats_count_once(model):
    x, t = _good(2, 64)
    maps = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    m = PixelPerturbation(fractions=(0.0, 0.5))
    m.update(model, x, maps, t, ids=torch.tensor([0, 1]))
    m.update(model, x[:1], maps[:1], t[:1], ids=torch.tensor([1]) - 1)  # id 0 again, same image: DDP padding
    assert m.per_sample()["ids"].tolist() == [0, 1]
    m.update(model, x.flip(0), maps, t, ids=torch.tensor([0, 1]))  # ids reused for other images
    with pytest.raises(InputError, match=r"ids \[0, 1\].*reused for different data.*Fix: pass each sample's index"):
        m.compute()


# ------------------------------------------------------------------------------------------ files and data roots
def test_mnist_corrupt_gunzipped_file_and_cut_header_name_the_file(tmp_path):
    from lightning_modules.data.mnist import MNISTDataModule, read_idx

    src = resolve_data_path("data/mnist")
    root = tmp_path / "m"
    root.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        raw = bytearray(gzip.decompress((src / f"{name}.gz").read_bytes()))
        if name.startswith("t10k-images"):
            raw[5000] ^= 0xFF  # one flipped byte: right size, wrong content
        (root / name).write_bytes(bytes(raw))
    with pytest.raises(DataRootError, match=r"t10k-images-idx3-ubyte: expected MD5 .*Fix: replace the file"):
        MNISTDataModule(root=str(root)).setup()
    (root / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00")  # cut inside the header
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: expected an idx header of 16 bytes.*cut inside"):
        read_idx(root / "t10k-images-idx3-ubyte")
    with pytest.raises(DataRootError, match=r"7840016 bytes.*got 6 bytes"):
        MNISTDataModule(root=str(root)).setup()


def test_data_roots_follow_saliency_data_and_the_error_names_it(tmp_path, monkeypatch):
    from lightning_modules.data.imagenet import ImageNetValDataModule
    from lightning_modules.data.mnist import MNISTDataModule

    monkeypatch.setenv("SALIENCY_DATA", str(tmp_path / "store"))
    dm = ImageNetValDataModule(root="data/imagenet")  # as configs/*/paper.yaml write it
    assert dm.root == tmp_path / "store" / "imagenet"
    assert MNISTDataModule().root == tmp_path / "store" / "mnist"
    with pytest.raises(FileNotFoundError, match=r"(?s)store/imagenet.*\$SALIENCY_DATA is '.*store'") as err:
        dm.setup()
    assert isinstance(err.value, InputError) and "Fix: put (or symlink) the files there" in str(err.value)
    assert resolve_data_path(str(tmp_path / "abs")) == tmp_path / "abs"  # absolute paths are kept


def test_recorded_data_paths_do_not_depend_on_where_the_data_root_is(tmp_path, monkeypatch):
    """Results and ROAR cache keys record ``data/mnist``, not the machine's absolute path (a clone elsewhere
    must reproduce the committed snapshot and reuse nothing stale)."""
    from lightning_modules.data.mnist import MNISTDataModule
    from lightning_modules.validation import portable_data_path

    recorded = []
    for where in ("a", "b/c"):
        monkeypatch.setenv("SALIENCY_DATA", str(tmp_path / where))
        dm = MNISTDataModule()
        assert dm.root == tmp_path / where / "mnist"
        # the public attributes are what khakzar2019's ROAR cache key hashes
        recorded.append((dm.data_path, {k: v for k, v in vars(dm).items()
                                        if isinstance(v, (str, os.PathLike)) and not k.startswith("_")}))
    assert recorded[0] == recorded[1] and recorded[0][0] == "data/mnist"
    assert portable_data_path(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")  # outside the data root: as given


def test_load_model_rejects_bad_names_counts_and_corrupt_files(tmp_path):
    with pytest.raises(KeyError, match=r"scenes_cnn.*mnist_cnn"):
        load_model("scenes_cn")
    with pytest.raises(InputError, match=r"num_classes: expected a positive int.*got 0"):
        load_model("scenes_cnn", num_classes=0)
    with pytest.raises(InputError, match=r"num_classes.*got '10' \(str\)"):
        load_model("scenes_cnn", num_classes="10")
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(ValueError, match=r"weights.safetensors \(corrupt or truncated .safetensors file.*replace it"):
        load_model("scenes_cnn", checkpoint=bad)


# ------------------------------------------------------------------------------------------ long runs
def test_report_destination_is_checked_before_any_work(tmp_path, monkeypatch):
    from test_cli import ToyData, ToyReplication

    from replications.cli import ReplicationCLI

    afile = tmp_path / "a_file"
    afile.write_text("")
    assert check_report_destination(tmp_path / "new" / "sub") == tmp_path / "new" / "sub"
    assert not (tmp_path / "new").exists()  # checked, nothing created
    with pytest.raises(DataRootError, match=r"a_file, which is a file"):
        check_report_destination(afile)
    with pytest.raises(DataRootError, match=r"a_file, which is a file"):
        check_report_destination(afile / "sub")
    if os.path.isdir("/proc/self"):  # Linux: no file can be created in /proc, not even by root
        with pytest.raises(DataRootError, match=r"writable folder.*no file can be created"):
            check_report_destination("/proc/no-such-dir/report")
    monkeypatch.setenv("SALIENCY_REPORT_DIR", str(afile))
    built = []
    monkeypatch.setattr(ToyReplication, "setup", lambda self, stage: built.append(stage))
    with pytest.raises(DataRootError, match=r"\$SALIENCY_REPORT_DIR.*Fix: set \$SALIENCY_REPORT_DIR"):
        ReplicationCLI(ToyReplication, "toy", datamodule_class=ToyData, args=["fit", "--trainer.max_epochs", "1"])
    assert built == []


def test_paper_command_prints_no_args_warning(tmp_path, monkeypatch):
    from test_cli import ToyData, ToyReplication

    from replications.cli import ReplicationCLI

    cfg = tmp_path / "smoke.yaml"
    cfg.write_text("trainer:\n  max_epochs: 1\n  accelerator: cpu\n  logger: false\n  enable_progress_bar: false\n"
                   "  enable_model_summary: false\n")
    monkeypatch.setattr("sys.argv", ["toy", "fit", "--config", str(cfg)])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ReplicationCLI(ToyReplication, "toy", datamodule_class=ToyData, args=["fit", "--config", str(cfg)])
    assert not [w for w in seen if "args parameter is intended" in str(w.message)]


def test_listing_is_readable_at_80_columns(capsys, monkeypatch):
    from replications.__main__ import cmd_list

    monkeypatch.setenv("COLUMNS", "80")
    cmd_list()
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "Sanity Checks for Saliency Maps" in out  # a title on one line, not one word per line
    assert "fong2017" in out and "petsiuk2018" in out
