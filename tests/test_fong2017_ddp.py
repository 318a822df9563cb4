"""The whole fong2017 smoke replication (every experiment: masks, artifacts, generalisation, Table 1 thresholds,
smallest boxes, adversarial detection + label recovery, keypoints, pointing game) through the CLI ``fit`` on 1 and
on 2 gloo CPU processes (DDP), on an uneven number of test images (7, batches of 3: the sampler pads one rank with
a duplicate) and held-out images (5): the report's numbers must be the same. Only the timings may differ."""

import json
import os


N_TEST, N_HELDOUT = 7, 5
TIMING_TABLES = ("benchmark", "explainer_time")


def _args(world_size: int) -> list[str]:
    return [
        "fit", "--config", "configs/fong2017/smoke.yaml",
        "--trainer.devices", str(world_size), "--trainer.strategy", "ddp" if world_size > 1 else "auto",
        "--model.data.test_images", str(N_TEST), "--model.data.heldout_images", str(N_HELDOUT),
        "--model.data.batch_size", "3",
        "--model.artifacts.images", "3",  # ids 0..2: spread over both ranks' shards
    ]


def _run(rank: int, world_size: int, out: str):
    from replications.cli import run
    from replications.fong2017.experiments import FongReplication

    if world_size > 1:
        # the gloo group already exists (tests/ddp_utils.run_ddp); tell Lightning these are its processes
        os.environ.update(LOCAL_RANK=str(rank), RANK=str(rank), WORLD_SIZE=str(world_size), NODE_RANK="0",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT="29548")
    os.environ.update(WANDB_MODE="disabled", SALIENCY_REPORT_DIR=out)
    run(FongReplication, "fong2017", args=_args(world_size))
    return rank


def _numbers(out) -> dict:
    r = json.loads((out / "results.json").read_text())
    return {"tables": {k: v["rows"] for k, v in r["tables"].items() if k not in TIMING_TABLES},
            "claims": {c["id"]: c["measured"] for c in r["claims"] if not c["id"].startswith("benchmark")}}


def test_two_processes_give_the_same_report_numbers_as_one(tmp_path):
    from ddp_utils import assert_same_report_numbers, run_ddp

    one, two = tmp_path / "one", tmp_path / "two"
    _run(0, 1, str(one))
    assert run_ddp(_run, world_size=2, args=(str(two),), timeout_s=600) == [0, 1]
    a, b = _numbers(one), _numbers(two)
    assert a["tables"]["mask_learning"][0]["images"] == b["tables"]["mask_learning"][0]["images"] == N_TEST
    assert a["tables"]["adversarial_detection"] and "n_train" not in a["tables"]["adversarial_detection"][0]
    assert_same_report_numbers(a, b, abs_tol=1e-4, nan_ok=True)
