"""One home for models (issue 40): the registry imports nothing of ours, the package has no import circle, every
shipped model is a registry entry loaded by ``load_model(name, weights="embedded")`` with its pinned config hash."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lightning_modules.models as models
from lightning_modules.models import load_model, shipped, unwrap

PACKAGE = Path(models.__file__).parent
REPO = PACKAGE.parents[1]

#: the config hash of every embedded model; the shipped weights (weights/MANIFEST.json) were trained under these,
#: so a change here means retraining and re-running every report
PINNED_CONFIG_HASHES = {
    "blackbox_default": "76f118edfe0a",
    "blackbox_smoke": "08a4d55fefb1",
    "mnist_cnn_default": "def7287acd77",
    "mnist_cnn_smoke": "1c78851ff7f5",
    "scenes_v2_vgg": "628739c7a1e6",
    "scenes_v2_resnet": "e939dca9f069",
    "scenes_v2_smoke": "a1d5f7d1313e",
    "scenes_multilabel_vgg": "9b7040009571",
    "scenes_multilabel_smoke": "3b7bc29e3617",
}
SHIPPED = ["blackbox_default", "blackbox_smoke", "mnist_cnn_default", "mnist_cnn_smoke", "scenes_multilabel_vgg",
           "scenes_v2_resnet", "scenes_v2_vgg"]


def test_config_hashes_are_pinned():
    assert {n: models.embedded_entry(n).config_hash() for n in models.list_models(source="embedded")} \
        == PINNED_CONFIG_HASHES
    assert models.REDUCED_SCHEDULE.content_hash() == "a10721d7ce88"
    manifest = json.loads((REPO / "weights" / "MANIFEST.json").read_text())
    for name in SHIPPED:
        assert manifest[name]["config_hash"] == PINNED_CONFIG_HASHES[name], name


def test_list_models_shipped():
    assert models.list_models(shipped=True) == SHIPPED
    assert "scenes_vgg" in models.list_models() and "scenes_v2_vgg" not in models.list_models()


def _input(dc, n=3):
    torch.manual_seed(0)
    return torch.rand(n, *dc.input_size)


@pytest.mark.parametrize("name", SHIPPED)
def test_embedded_is_the_architecture_with_the_manifests_weights(name):
    entry = models.embedded_entry(name)
    cfg = entry.config
    model, dc = load_model(name, weights="embedded")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    num_classes = cfg.scenes.num_classes if hasattr(cfg, "scenes") else 10
    arch, arch_dc = load_model(cfg.model_name, num_classes=num_classes, **dict(getattr(cfg, "model_kwargs", {})))
    state, info = shipped.load_shipped(name, config_hash=PINNED_CONFIG_HASHES[name])
    unwrap(arch).load_state_dict(state)
    assert dc == arch_dc and type(unwrap(model)) is type(unwrap(arch))
    assert shipped.state_dict_equal(unwrap(model).state_dict(), state)
    x = _input(dc)
    with torch.no_grad():
        assert torch.equal(model(x), arch(x))
    # what was measured when it was trained, and the scenes it was trained on, ride along as before
    attr = {"blackbox": "blackbox_info", "mnist": "mnist_info"}.get(entry.kind, "embedded_info")
    assert getattr(model, attr) == info
    if hasattr(cfg, "scenes"):
        assert model.scenes_config == cfg.scenes
    assert getattr(model, "score", "softmax") == ("sigmoid" if entry.kind == "embedded_multilabel" else "softmax")


def test_bad_names_and_weights_name_the_fix():
    with pytest.raises(ValueError, match="scenes_v2_vgg") as e:
        load_model("scenes_v2_vggg", weights="embedded")
    assert "blackbox_default" in str(e.value) and "mnist_cnn_smoke" in str(e.value)
    with pytest.raises(ValueError, match='weights="embedded"'):
        load_model("scenes_v2_vgg")  # a trained model needs its weights named
    with pytest.raises(ValueError, match="retrain"):
        load_model("scenes_v2_vgg", weights="imagenet")
    with pytest.raises(KeyError, match="blackbox_default"):
        models.retrain_and_ship("scenes_v2_smoke")  # not shipped: nothing to ship
    with pytest.raises(ValueError, match="CPU only"):
        models.retrain_and_ship("blackbox_smoke", accelerator="gpu")


def test_train_embedded_cli_names_the_shipped_models(capsys):
    from replications.__main__ import cmd_train_embedded

    assert cmd_train_embedded(["nope"]) == 2
    assert "scenes_multilabel_vgg" in capsys.readouterr().out


def test_registry_imports_nothing_of_ours():
    """Executed on its own (without the package above it), the registry loads no module of ours and works."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('registry_alone', {str(PACKAGE / 'registry.py')!r})\n"
        "r = importlib.util.module_from_spec(spec); sys.modules['registry_alone'] = r; spec.loader.exec_module(r)\n"
        "r.register_model('toy', dict, (1, 2, 2), (0.5,), (0.5,))\n"
        "assert r.is_model('toy') and r.model_entrypoint('toy') is dict and r.list_architectures() == ['toy']\n"
        "print(sorted(m for m in sys.modules if m.startswith(('lightning_modules', 'replications', 'torch'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    tree = ast.parse((PACKAGE / "registry.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def _package_imports(path: Path) -> set[str]:
    """The ``lightning_modules.models`` modules a file of the package imports (anywhere in it)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("lightning_modules.models")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lightning_modules.models"):
            if node.module == "lightning_modules.models":
                out |= {f"lightning_modules.models.{a.name}" for a in node.names}
            else:
                out.add(node.module)
    return out


def test_no_import_circle_in_the_package():
    files = {f"lightning_modules.models.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {m: _package_imports(p) & set(files) for m, p in files.items()}
    for m, p in files.items():
        # a family / kind file takes what it needs from the modules, never from the package's __init__
        tree = ast.parse(p.read_text())
        assert not any(isinstance(n, ast.ImportFrom) and n.module == "lightning_modules.models" for n in ast.walk(tree)), m
    assert graph["lightning_modules.models.registry"] == set()
    seen, done = set(), set()

    def visit(m, path):
        assert m not in seen - done, f"import circle: {' -> '.join(path + [m])}"
        if m in done:
            return
        seen.add(m)
        for n in sorted(graph[m]):
            visit(n, path + [m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])


def test_old_modules_are_gone():
    for old in ("models.py", "nets.py", "nets_v2.py", "shipped.py", "embedded_v2.py", "embedded_multilabel.py",
                "blackbox.py", "mnist_model.py"):
        assert not (PACKAGE.parent / old).exists(), old


def test_registering_module_is_the_family_file():
    assert models.registering_module("scenes_vgg") == "lightning_modules.models.vgg_resnet_v2"
    assert models.registering_module("resnet8") == "lightning_modules.models.small_cnns"
    assert models.registering_module("resnet50") is None
