"""The spread over training seeds of the numbers a run trains, and how stable their claims' statuses are.

``python -m replications seed-spread fong2017 [RESULTS]`` reads a report's per-seed outcomes (fong2017: one
adversarial detector per method and training seed, ``results.adversarial.correct_by_seed``) and prints

- per method, the standard deviation of one detector's accuracy over the seeds (``s``) and the standard deviation
  of the seed-mean accuracy between two runs that each average ``K`` seeds, ``s sqrt(2 / K)``: a float rounding
  that moves a detector's input moves its training as another seed would (the training is chaotic), so this is
  what another machine's run may differ by; ``reproduce``'s bound for these numbers is a stated multiple of it;
- per claim built on them, the share of seed resamples (``K`` of the ``K`` seeds drawn with replacement, the claim
  rebuilt on the resampled seed means) that keep the claim's status and its intervals' statuses: a status that a
  resample changes often is one another machine's run may change.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

from lightning_modules.utils import REPO_ROOT


def _fong2017_claims(results: dict) -> list:
    from replications.fong2017.claims import detection_claims

    return detection_claims(results)


#: paper -> (the results key holding the per-seed outcomes, the claims built on them)
SEEDED = {"fong2017": ("adversarial", _fong2017_claims)}


def seed_spread(paper: str, results: dict, resamples: int = 1000, seed: int = 0) -> dict:
    """Per method the seed spread of the accuracy; per claim the share of ``resamples`` seed resamples keeping its
    status (and each interval's)."""
    if paper not in SEEDED:
        raise ValueError(f"paper must be one of {sorted(SEEDED)} (the papers whose runs train a network per seed); "
                         f"got {paper!r}")
    key, build = SEEDED[paper]
    res = results["results"]
    a = res.get(key) or {}
    by_seed = {m: torch.tensor(v, dtype=torch.float64) for m, v in (a.get("correct_by_seed") or {}).items()}
    if not by_seed or next(iter(by_seed.values())).shape[0] < 2:
        raise ValueError(f"{paper}'s results hold no per-seed outcomes of two or more seeds ({key}.correct_by_seed); "
                         "run it with more than one seed (fong2017: --model.adversarial.seeds 7)")
    k = next(iter(by_seed.values())).shape[0]
    methods = {}
    for m, v in by_seed.items():
        acc = v.mean(1)
        s = float(acc.std())
        methods[m] = {"accuracy": float(acc.mean()), "sd_one_seed": s, "sd_between_runs": s * math.sqrt(2 / k),
                      "min": float(acc.min()), "max": float(acc.max())}
    reference = {c.id: (c.relation_status, [iv.status for iv in c.verdict.intervals]) for c in build(res)}
    agree = {cid: [0, [0] * len(ivs)] for cid, (_, ivs) in reference.items()}
    g = torch.Generator().manual_seed(seed)
    for _ in range(resamples):
        pick = torch.randint(0, k, (k,), generator=g)
        trial = dict(res, **{key: dict(a, correct={m: v[pick].mean(0).tolist() for m, v in by_seed.items()},
                                       correct_by_seed={m: v[pick].tolist() for m, v in by_seed.items()})})
        for c in build(trial):
            status, ivs = reference[c.id]
            agree[c.id][0] += c.relation_status == status
            for i, iv in enumerate(c.verdict.intervals):
                agree[c.id][1][i] += iv.status == ivs[i]
    claims = {cid: {"status": reference[cid][0], "kept": n / resamples,
                    "intervals": [{"status": s, "kept": x / resamples} for s, x in zip(reference[cid][1], ivs)]}
              for cid, (n, ivs) in agree.items()}
    return {"paper": paper, "seeds": k, "resamples": resamples, "methods": methods, "claims": claims}


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m replications seed-spread", description=__doc__.split("\n\n")[0])
    p.add_argument("paper", choices=sorted(SEEDED))
    p.add_argument("results", nargs="?", type=Path, default=None,
                   help="a report's results.json (default: the committed reports/<paper>/results.json)")
    p.add_argument("--resamples", type=int, default=1000)
    args = p.parse_args(argv)
    path = args.results or REPO_ROOT / "reports" / args.paper / "results.json"
    if not path.is_file():
        print(f"seed-spread: no results at {path}; pass a report's results.json")
        return 2
    try:
        out = seed_spread(args.paper, json.loads(path.read_text()), resamples=args.resamples)
    except ValueError as e:
        print(f"seed-spread: {e}")
        return 2
    print(f"{out['paper']}: {out['seeds']} seeds, {out['resamples']} seed resamples ({path})")
    for m, r in out["methods"].items():
        print(f"  {m:34s} accuracy {r['accuracy']:.4f} (seeds {r['min']:.3f}-{r['max']:.3f}); sd one seed "
              f"{r['sd_one_seed']:.4f}, between two runs of {out['seeds']} seeds {r['sd_between_runs']:.4f}")
    for cid, c in out["claims"].items():
        ivs = ", ".join(f"{iv['status']} {iv['kept']:.3f}" for iv in c["intervals"])
        print(f"  claim {cid}: {c['status']} kept in {c['kept']:.3f} of the resamples; intervals: {ivs}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
