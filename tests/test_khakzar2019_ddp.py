"""khakzar2019's sanity checks + pixel perturbation (ROAR off: an empty roar) through the CLI on 1 and on 2
gloo CPU processes (DDP), on an uneven number of test scenes (7): the report's numbers must be the same."""

import json
import os

import pytest

from replications.khakzar2019.__main__ import main

N_TEST = 7


def _args(world_size: int) -> list[str]:
    return [
        "fit", "--config", "configs/khakzar2019/smoke.yaml", "--model.roar", "{}",
        "--model.sanity.images", "5",  # ids 0..4: spread over both ranks' shards
        "--trainer.devices", str(world_size), "--trainer.strategy", "ddp" if world_size > 1 else "auto",
        "--trainer.limit_test_batches", "1.0",
        "--data.init_args.config.test_size", str(N_TEST), "--data.init_args.eval_batch_size", "3",
    ]


def _run(rank: int, world_size: int, out: str):
    if world_size > 1:
        # the gloo group already exists (tests/ddp_utils.run_ddp); tell Lightning these are its processes
        os.environ.update(LOCAL_RANK=str(rank), RANK=str(rank), WORLD_SIZE=str(world_size), NODE_RANK="0",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT="29547")
    os.environ.update(WANDB_MODE="disabled", SALIENCY_REPORT_DIR=out)
    main(_args(world_size))
    return rank


def _numbers(out) -> dict:
    r = json.loads((out / "results.json").read_text())
    return {"tables": {k: v["rows"] for k, v in r["tables"].items()},
            "claims": {c["id"]: c["measured"] for c in r["claims"]},
            "results": r["results"]}


def test_two_processes_give_the_same_report_numbers_as_one(tmp_path):
    from ddp_utils import assert_same_report_numbers, run_ddp

    one, two = tmp_path / "one", tmp_path / "two"
    _run(0, 1, str(one))
    assert run_ddp(_run, world_size=2, args=(str(two),), timeout_s=600) == [0, 1]
    a, b = _numbers(one), _numbers(two)
    assert a["results"]["test_images"] == b["results"]["test_images"] == N_TEST  # the padded duplicate counted once
    explained = [x["results"]["models"]["explained"] for x in (a, b)]
    assert explained[0]["sanity"]["images"] == explained[1]["sanity"]["images"] == 5
    assert "roar_test_accuracy" not in a["tables"] and not any(c.startswith("roar.") for c in a["claims"])
    assert_same_report_numbers({k: a[k] for k in ("tables", "claims")}, {k: b[k] for k in ("tables", "claims")}, abs_tol=1e-5, nan_ok=True)
    assert a["results"]["classifier_test_accuracy"] == pytest.approx(b["results"]["classifier_test_accuracy"], abs=1e-5)
    for key in ("logit", "dp"):  # per-image values in the same (id) order on one and two processes
        for order in ("morf", "lerf"):
            one, two = (e["pixel"]["per_image"][key][order] for e in explained)
            assert one.keys() == two.keys()
            for m in one:
                assert one[m] == pytest.approx(two[m], abs=1e-5), (key, order, m)
    pg = [e["sanity"]["final_spearman_abs"]["prunegrad"] for e in explained]
    assert [v is None for v in pg[0]] == [v is None for v in pg[1]]
    assert [v for v in pg[0] if v is not None] == pytest.approx([v for v in pg[1] if v is not None], abs=1e-5)
