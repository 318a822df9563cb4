"""``python -m replications seed-spread``: the seed spread of fong2017's detectors and its claims' stability, on
known per-seed outcomes."""

from __future__ import annotations

import json
import math

import pytest

from replications.__main__ import main
from replications.seed_spread import seed_spread

METHODS = ["gradient", "gradcam"]


def _results(per_seed: dict[str, list[list[float]]]) -> dict:
    correct = {m: [sum(col) / len(col) for col in zip(*v)] for m, v in per_seed.items()}
    return {"results": {"methods": METHODS, "all_methods": [*METHODS, "mask"],
                        "adversarial": {"correct_by_seed": per_seed, "correct": correct,
                                        "seeds": list(range(len(next(iter(per_seed.values())))))}}}


def test_spread_and_a_status_no_resample_changes():
    n = 200
    mask = [[1.0] * n, [1.0] * n, [1.0] * (n - 20) + [0.0] * 20]  # accuracies 1, 1, 0.9
    other = [[float(i % 2) for i in range(n)]] * 3  # 0.5 with every seed
    out = seed_spread("fong2017", _results({"gradient": other, "gradcam": other, "mask": mask}), resamples=50)
    assert out["seeds"] == 3
    m = out["methods"]["mask"]
    assert m["accuracy"] == pytest.approx(29 / 30) and (m["min"], m["max"]) == (0.9, 1.0)
    assert m["sd_one_seed"] == pytest.approx(math.sqrt(1 / 300))  # sample sd of (1, 1, 0.9)
    assert m["sd_between_runs"] == pytest.approx(m["sd_one_seed"] * math.sqrt(2 / 3))
    assert out["methods"]["gradient"]["sd_one_seed"] == 0.0
    claim = out["claims"]["e_mask_best_detector"]
    assert claim["status"] == "holds" and claim["kept"] == 1.0  # the mask beats 0.5 by far with any seeds


def test_a_status_that_hangs_on_one_seed_is_unstable():
    n = 100
    good = [1.0] * n
    bad = [float(i % 2) for i in range(n)]
    # the mask is perfect with one seed of three, at chance with two; the other methods at 0.75 with every seed
    mask = [good, bad, bad]
    other = [[1.0 if i % 4 else 0.0 for i in range(n)]] * 3
    out = seed_spread("fong2017", _results({"gradient": other, "gradcam": other, "mask": mask}), resamples=300)
    assert 0.0 < out["claims"]["e_mask_best_detector"]["kept"] < 1.0


def test_bad_inputs_name_the_fix(tmp_path, capsys):
    with pytest.raises(ValueError, match="paper must be one of"):
        seed_spread("adebayo2018", {"results": {}})
    one = _results({"gradient": [[1.0, 0.0]], "gradcam": [[1.0, 0.0]], "mask": [[1.0, 1.0]]})
    with pytest.raises(ValueError, match="--model.adversarial.seeds"):
        seed_spread("fong2017", one)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(one))
    assert main(["seed-spread", "fong2017", str(path)]) == 2
    assert "two or more seeds" in capsys.readouterr().out
    assert main(["seed-spread", "fong2017", str(tmp_path / "missing.json")]) == 2
    assert "no results at" in capsys.readouterr().out
