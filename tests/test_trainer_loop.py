"""The training loop: it learns, it resumes exactly, it runs under DDP, it writes a trustworthy run folder."""

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trainer.checkpoint import load_checkpoint  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.train import train  # noqa: E402

torch.set_num_threads(1)


def _cfg(out: Path, **kw) -> TrainConfig:
    base = dict(out=str(out), synthetic=12, val_fraction=0.25, pretrained=False, epochs=2, batch=3, train_size=64, lr=0.02, seed=3, warmup_steps=2)
    base.update(kw)
    return TrainConfig(**base)


def test_overfitting_two_tiny_images_drives_the_loss_down():
    from trainer.config import ModelConfig
    from trainer.losses import total_loss
    from trainer.model import DefocusDepthNet
    from trainer.synthetic import SyntheticConfig, synthetic_samples

    torch.manual_seed(0)
    ss = synthetic_samples(2, 0, SyntheticConfig(height=64, width=64))
    x = torch.from_numpy(np.stack([s.image[..., ::-1].copy() for s in ss])).permute(0, 3, 1, 2).float() / 127.5 - 1
    m = torch.from_numpy(np.stack([s.in_focus for s in ss]).astype(np.float32))[:, None]
    d = torch.from_numpy(np.stack([s.depth for s in ss]))[:, None]
    net = DefocusDepthNet(ModelConfig(), pretrained=False).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(40):
        terms = total_loss(net(x), m, d, torch.tensor([True, True]))
        opt.zero_grad()
        terms.total.backward()
        opt.step()
        losses.append(terms.total.item())
    assert losses[-1] < 0.6 * losses[0]


@pytest.mark.slow
def test_run_folder_and_resume_equivalence(tmp_path):
    full = train(_cfg(tmp_path / "full"))
    train(_cfg(tmp_path / "half", stop_after_epochs=1))  # as if the job were stopped after epoch 1
    half = train(_cfg(tmp_path / "half"), resume=tmp_path / "half")
    a = load_checkpoint(tmp_path / "full" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "half" / "last.pt")["model"]
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < 1e-4
    assert half["loss"] == pytest.approx(full["loss"], rel=1e-4)
    run = tmp_path / "full"
    assert {p.name for p in run.iterdir()} >= {"config.json", "last.pt", "best.pt", "metrics.jsonl"}
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["seed"] == 3 and "torch" in config["versions"] and config["data"]["kind"] == "synthetic"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1, 2] and "val_f_beta" in lines[0]  # 0: before training
    assert torch.load(run / "best.pt", weights_only=True)["model_config"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train(_cfg(Path(out), epochs=1, device="cpu"))


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_gloo(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # only rank 0 writes: the untrained baseline and epoch 1
    record = json.loads(lines[1])
    assert record["epoch"] == 1 and np.isfinite(record["loss"])
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world_size"] == 2


def test_cli_reports_bad_data_cleanly(tmp_path):
    from typer.testing import CliRunner

    from trainer.cli import app

    res = CliRunner().invoke(app, ["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "missing" in res.output and "images/" in res.output


def test_init_starts_from_a_checkpoints_weights_and_refuses_another_network(tmp_path):
    train(_cfg(tmp_path / "base", epochs=1))
    source = tmp_path / "base" / "last.pt"
    train(_cfg(tmp_path / "tuned", epochs=1, init=str(source)))
    base = [json.loads(x) for x in (tmp_path / "base" / "metrics.jsonl").read_text().splitlines()]
    tuned = [json.loads(x) for x in (tmp_path / "tuned" / "metrics.jsonl").read_text().splitlines()]
    # The fine-tune's "untrained" baseline is the source's trained state, not a fresh network's.
    assert tuned[0]["val_mae"] == pytest.approx(base[-1]["val_mae"], abs=1e-6)
    assert tuned[0]["val_mae"] != pytest.approx(base[0]["val_mae"], abs=1e-6)
    with pytest.raises(ValueError, match="differs"):
        train(_cfg(tmp_path / "other", epochs=1, decoder="paper", init=str(source)))


def test_multiscale_draws_sizes_per_step_and_shrinks_batches_consistently():
    from trainer.train import rescale_batch, step_size

    assert _cfg(Path("x")).sizes() == [64]
    sizes = _cfg(Path("x"), train_size=128, multiscale=(128, 64, 96)).sizes()
    assert sizes == [64, 96, 128]
    drawn = [step_size(sizes, 3, s) for s in range(60)]
    assert set(drawn) == {64, 96, 128} and drawn == [step_size(sizes, 3, s) for s in range(60)]
    with pytest.raises(ValueError, match="multiples of 32"):
        _cfg(Path("x"), train_size=64, multiscale=(64, 128))
    image = torch.rand(2, 3, 128, 128)
    mask = torch.zeros(2, 1, 128, 128)
    mask[..., :64] = 1
    depth = torch.linspace(0, 1, 128).expand(2, 1, 128, 128).clone()
    i, m, d = rescale_batch(image, mask, depth, 64)
    assert i.shape == (2, 3, 64, 64) and m.shape == d.shape == (2, 1, 64, 64)
    assert set(m.unique().tolist()) == {0.0, 1.0} and m[..., :32].all() and not m[..., 32:].any()
    assert torch.allclose(i.mean(), image.mean(), atol=1e-5) and d[0, 0, 0, 0] < d[0, 0, 0, -1]
    assert rescale_batch(image, mask, depth, 128)[0] is image


def test_saved_configs_of_earlier_runs_still_resume():
    """config.json written before typed fields: "imgsz", and sizes and triples as strings."""
    old = {"imgsz": 384, "multiscale": "256,320,384", "teacher_size": "448x640", "teacher_mean": "0,0,0", "teacher_std": "1,1,1", "epochs": 6, "unknown_key": 1}
    cfg = TrainConfig.from_dict(old)
    assert cfg.train_size == 384 and cfg.multiscale == (256, 320, 384) and cfg.teacher_size == (448, 640)
    assert cfg.teacher_mean == (0.0, 0.0, 0.0) and cfg.epochs == 6
    shipped = json.loads((Path(__file__).resolve().parent.parent / "trainer/checkpoints/dbd_lite0_320/config.json").read_text())["train"]
    assert TrainConfig.from_dict(shipped).sizes() == [256, 320, 384]


def test_cli_refuses_malformed_sizes_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from trainer.cli import app

    for args, text in (
        (["--multiscale", "256,abc"], "--multiscale: expected comma-separated"),
        (["--teacher-size", "448"], "--teacher-size: expected HxW"),
        (["--train-size", "100"], "--train-size must be a multiple of 32"),
    ):
        res = CliRunner().invoke(app, ["--synthetic", "4", "--out", str(tmp_path / "r"), *args])
        assert res.exit_code == 2 and text in res.output, res.output
