"""2 CPU processes give the same metric values as 1 process on an uneven split (7 samples), with the
DistributedSampler's padding duplicate removed by sample id."""

import torch
from torch.utils.data import DistributedSampler

from ddp_utils import run_ddp
from lightning_modules.metrics import DeletionAUC, PointingGame, WeakLocalisation

N = 7


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def _data():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(N, 3, 12, 12, generator=g)
    heatmaps = torch.rand(N, 1, 12, 12, generator=g)
    labels = torch.randint(0, 3, (N,), generator=g)
    boxes = torch.tensor([[2.0, 2.0, 8.0, 9.0]]).expand(N, 1, 4).clone()
    boxes[::2] = torch.tensor([5.0, 4.0, 12.0, 12.0])
    return images, heatmaps, labels, boxes


def _evaluate(indices: list[int]):
    images, heatmaps, labels, boxes = _data()
    idx = torch.tensor(indices)
    model = TinyNet()
    deletion = DeletionAUC(pixels_per_step=10, substrate="zeros", max_batch=5)
    pointing = PointingGame(tolerance=2.0)
    loc = WeakLocalisation(method="value", alphas=(0.2, 0.5, 0.8))
    for chunk in idx.split(3):  # several updates per process
        deletion.update(model, images[chunk], heatmaps[chunk], labels[chunk], ids=chunk)
        pointing.update(heatmaps[chunk], labels[chunk], boxes=boxes[chunk], box_labels=labels[chunk, None],
                        difficult=chunk % 3 == 0, ids=chunk)
        loc.update(heatmaps[chunk], labels[chunk], boxes[chunk], labels[chunk, None], ids=chunk)
    return {
        "deletion": deletion.compute(), "deletion_ids": deletion.per_sample()["ids"],
        "deletion_auc": deletion.per_sample()["auc"], "pointing": pointing.compute(), "loc": loc.compute(),
    }


def _rank_fn(rank: int, world_size: int):
    sampler = DistributedSampler(range(N), num_replicas=world_size, rank=rank, shuffle=False)  # pads 7 -> 8
    return {"indices": list(sampler), **_evaluate(list(sampler))}


def test_two_processes_match_one_on_uneven_split():
    single = _evaluate(list(range(N)))
    results = run_ddp(_rank_fn, world_size=2)
    seen = sorted(results[0]["indices"] + results[1]["indices"])
    assert len(seen) == 8 and seen.count(0) == 2, "the sampler must have padded with a duplicate for this test"
    for res in results:  # every rank computes the synced value
        assert torch.equal(res["deletion_ids"], torch.arange(N))
        torch.testing.assert_close(res["deletion_auc"], single["deletion_auc"], rtol=0, atol=1e-6)
        torch.testing.assert_close(res["deletion"], single["deletion"], rtol=0, atol=1e-6)
        for key in ("all", "difficult"):
            torch.testing.assert_close(res["pointing"][key], single["pointing"][key], rtol=0, atol=1e-6)
        torch.testing.assert_close(res["loc"], single["loc"], rtol=0, atol=1e-6)
    # counting the duplicate would change the mean: the test can tell
    dup = torch.cat([single["deletion_auc"], single["deletion_auc"][:1]]).mean()
    assert not torch.isclose(dup, single["deletion"], atol=1e-6)
