"""The example SLURM script (configs/slurm/example.sbatch): its #SBATCH task layout matches the Lightning flags of
its srun line (checked with Lightning's own SLURMEnvironment), and the command it runs is one the paper's CLI accepts.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from lightning_modules.utils import REPO_ROOT

SCRIPT = REPO_ROOT / "configs" / "slurm" / "example.sbatch"
PAPERS = {"fong2017", "petsiuk2018", "adebayo2018", "khakzar2019", "ghorbani2019"}


def parse_sbatch(text: str) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """(#SBATCH options, the srun command's argv, shell defaults ``VAR="${VAR:-value}"``)."""
    directives: dict[str, str] = {}
    defaults: dict[str, str] = {}
    srun: list[str] = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#SBATCH"):
            opt = shlex.split(s[len("#SBATCH"):], comments=True)
            for i, tok in enumerate(opt):
                if tok.startswith("--"):
                    if "=" in tok:
                        k, v = tok[2:].split("=", 1)
                    else:
                        k = tok[2:]
                        v = opt[i + 1] if i + 1 < len(opt) and not opt[i + 1].startswith("--") else ""
                    directives[k] = v
        elif s.startswith("srun "):
            srun = shlex.split(s)
        else:
            m = re.fullmatch(r'(\w+)="\$\{\1:-([^}]*)\}"', s)
            if m:
                defaults[m.group(1)] = m.group(2)
    return directives, srun, defaults


def flag(argv: list[str], name: str) -> str:
    for i, tok in enumerate(argv):
        if tok == name:
            return argv[i + 1]
        if tok.startswith(name + "="):
            return tok.split("=", 1)[1]
    raise AssertionError(f"{name} missing from the srun line: {' '.join(argv)}")


def expand(argv: list[str], env: dict[str, str]) -> list[str]:
    return [re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env[m.group(1) or m.group(2)], a) for a in argv]


@pytest.fixture(scope="module")
def script():
    assert SCRIPT.is_file(), f"{SCRIPT} is missing"
    text = SCRIPT.read_text()
    assert text.startswith("#!/bin/bash")
    return parse_sbatch(text)


def test_task_layout_matches_the_trainer_flags(script):
    directives, srun, defaults = script
    assert srun[:2] == ["srun", "python"], "one srun task per GPU, each running python"
    nodes = int(directives["nodes"])
    tasks = int(directives["ntasks-per-node"])
    gpus = int(directives.get("gpus-per-node") or directives["gres"].rsplit(":", 1)[1])
    devices = int(flag(srun, "--trainer.devices"))
    num_nodes = int(flag(srun, "--trainer.num_nodes"))
    assert (nodes, tasks, gpus) == (num_nodes, devices, devices)
    assert nodes >= 2, "the example is the multi-node one"
    assert flag(srun, "--trainer.strategy") == "ddp"
    assert flag(srun, "--trainer.accelerator") == "gpu"
    assert "SIGUSR1" in directives.get("signal", ""), "Lightning's auto-requeue listens for SIGUSR1"
    assert defaults["PAPER"] in PAPERS


def test_lightning_slurm_environment_accepts_the_layout(script, monkeypatch):
    """Lightning's own check, fed with what SLURM would export for these directives; and it rejects a mismatch,
    so this test fails if the script's numbers drift apart."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    directives, srun, _ = script
    nodes, tasks = int(directives["nodes"]), int(directives["ntasks-per-node"])
    monkeypatch.setenv("SLURM_NTASKS", str(nodes * tasks))
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", str(tasks))
    monkeypatch.setenv("SLURM_NNODES", str(nodes))
    monkeypatch.setenv("SLURM_JOB_NAME", directives["job-name"])
    monkeypatch.setenv("SLURM_NODELIST", "node[1-2]")
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_NODEID", "1")
    assert SLURMEnvironment.detect()
    env = SLURMEnvironment()
    devices, num_nodes = int(flag(srun, "--trainer.devices")), int(flag(srun, "--trainer.num_nodes"))
    env.validate_settings(num_devices=devices, num_nodes=num_nodes)
    assert env.world_size() == devices * num_nodes
    assert env.main_address == "node1"
    with pytest.raises(ValueError, match="ntasks-per-node"):
        env.validate_settings(num_devices=devices + 1, num_nodes=num_nodes)
    with pytest.raises(ValueError, match="nodes"):
        env.validate_settings(num_devices=devices, num_nodes=num_nodes + 1)


def test_the_srun_command_is_accepted_by_a_paper_cli(script):
    """Substitute a paper that has a paper.yaml today (as ``sbatch --export=ALL,PAPER=<paper>`` would) and let its
    LightningCLI parse the whole command with ``--print_config`` (parses and validates, instantiates nothing, so
    the GPU flags are fine on a CPU machine)."""
    _, srun, defaults = script
    ready = sorted(p for p in PAPERS if (REPO_ROOT / "configs" / p / "paper.yaml").is_file()
                   and (REPO_ROOT / "replications" / p / "__main__.py").is_file())
    assert ready, "no paper has configs/<paper>/paper.yaml yet"
    paper = defaults["PAPER"] if defaults["PAPER"] in ready else ready[0]
    argv = expand(srun[1:], {"PAPER": paper})
    assert argv[:3] == ["python", "-m", f"replications.{paper}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *argv[1:], "--print_config"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^\s+devices: '?4'?$", proc.stdout, re.M) and re.search(r"^\s+num_nodes: 2$", proc.stdout, re.M)
    assert re.search(r"^\s+strategy: ddp$", proc.stdout, re.M)
