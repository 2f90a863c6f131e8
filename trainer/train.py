"""The training loop: data, teacher maps, SGD with poly decay, validation, checkpoints, resume, DDP.

`train` reads as its steps: prepare the data, build the network (fresh, from --init, or resumed),
then per epoch train, validate and record (trainer.run_folder owns what is written)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from runtime.datasets import Sample, dataset_hash, find_pairs, load_samples, read_names, seeded_split
from runtime.metrics import DatasetScores, ScoreAccumulator
from trainer.checkpoint import CHECKPOINT_VERSION, load_checkpoint
from trainer.config import TrainConfig
from trainer.data import AugmentConfig, augment, resize_to
from trainer.losses import LossWeights, total_loss
from trainer.model import DefocusDepthNet, normalise_rgb
from trainer.run_folder import RunFolder
from trainer.synthetic import synthetic_samples
from trainer.teacher import OnnxDepthTeacher, TeacherConfig, image_key

# ---------------------------------------------------------------- data


@dataclass
class Prepared:
    train: list[Sample]
    val: list[Sample]
    provenance: dict[str, Any]
    warnings: list[str]


def prepare_data(cfg: TrainConfig, console: Console) -> Prepared:
    """Load the dataset (or render a synthetic one), split it and attach teacher depth maps."""
    if cfg.synthetic:
        samples = synthetic_samples(cfg.synthetic, cfg.seed)
        train_stems, val_stems = seeded_split([s.stem for s in samples], cfg.val_fraction, cfg.seed)
        by_stem = {s.stem: s for s in samples}
        return Prepared(
            [by_stem[s] for s in train_stems],
            [by_stem[s] for s in val_stems],
            {"kind": "synthetic", "count": cfg.synthetic, "seed": cfg.seed, "teacher": "true depth"},
            [],
        )
    if not cfg.data:
        raise ValueError("give --data DIR or --synthetic N")
    root = Path(cfg.data)
    if cfg.train_list:
        train_names = read_names(Path(cfg.train_list))
        val_names = read_names(Path(cfg.val_list)) if cfg.val_list else []
        overlap = set(train_names) & set(val_names)
        if overlap:
            raise ValueError(f"{cfg.val_list}: {len(overlap)} names also in the training list, e.g. {sorted(overlap)[0]}")
    else:
        all_stems = [p.stem for p in find_pairs(root)]
        if cfg.val_list:
            val_names = read_names(Path(cfg.val_list))
            train_names = [s for s in all_stems if s not in set(val_names)]
        else:
            train_names, val_names = seeded_split(all_stems, cfg.val_fraction, cfg.seed)
    train_pairs, val_pairs = find_pairs(root, train_names), find_pairs(root, val_names) if val_names else []
    train_report = load_samples(train_pairs, cfg.mask_in_focus, cfg.skip_bad)
    val_report = load_samples(val_pairs, cfg.mask_in_focus, cfg.skip_bad) if val_pairs else None
    warnings = train_report.skipped + (val_report.skipped if val_report else [])
    train = train_report.samples
    if cfg.teacher:
        train = attach_teacher(train, {p.stem: p.image for p in train_pairs}, cfg, console)
    provenance = {
        "kind": "folder",
        "root": str(root.resolve()),
        "train": len(train),
        "val": len(val_report.samples) if val_report else 0,
        "val_names": [s.stem for s in val_report.samples] if val_report else [],
        "sha256": dataset_hash(train_pairs + list(val_pairs)),
        "mask_in_focus": cfg.mask_in_focus,
    }
    return Prepared(train, val_report.samples if val_report else [], provenance, warnings)


def attach_teacher(samples: list[Sample], paths: dict[str, Path], cfg: TrainConfig, console: Console) -> list[Sample]:
    teacher = OnnxDepthTeacher(teacher_config(cfg), Path(cfg.teacher_cache))
    out = []
    with _progress(console) as progress:
        task = progress.add_task("teacher depth", total=len(samples), info="")
        for s in samples:
            d = teacher.depth_cached(s.image, image_key(paths[s.stem]))
            h, w = s.image.shape[:2]
            out.append(dataclasses.replace(s, depth=cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR)))
            progress.advance(task)
    console.print(f"teacher {cfg.teacher}: {teacher.computed} maps computed, {len(samples) - teacher.computed} from cache")
    return out


def teacher_config(cfg: TrainConfig) -> TeacherConfig:
    return TeacherConfig(
        Path(cfg.teacher or ""),
        near=cfg.teacher_near,  # type: ignore[arg-type]
        layout=cfg.teacher_layout,
        size=cfg.teacher_size,
        mean=cfg.teacher_mean,
        std=cfg.teacher_std,
        output=cfg.teacher_output,
    )


class AugmentedDataset(torch.utils.data.Dataset):
    """Training samples, augmented with a generator seeded by (seed, epoch, index): order-independent."""

    def __init__(self, samples: Sequence[Sample], aug: AugmentConfig, seed: int) -> None:
        self.samples, self.aug, self.seed, self.epoch = samples, aug, seed, 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = self.samples[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        img, msk, dep = augment(s.image, s.in_focus, s.depth, self.aug, rng)
        has = dep is not None
        return {
            "image": torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1),  # RGB uint8
            "mask": torch.from_numpy(msk.astype(np.float32))[None],
            "depth": torch.from_numpy(dep if has else np.zeros(msk.shape, np.float32))[None],
            "has_depth": torch.tensor(has),
        }


def epoch_order(n: int, seed: int, epoch: int, rank: int, world: int, batch: int) -> list[int]:
    """This rank's shuffled indices for one epoch; every rank gets the same number of full batches."""
    order = np.random.default_rng([seed, epoch, 7]).permutation(n).tolist()
    per_rank = (n // world // batch) * batch
    return order[rank::world][:per_rank]


# ---------------------------------------------------------------- evaluation


def model_input(images_bgr: Sequence[np.ndarray], size: int, backbone: str, device: torch.device) -> torch.Tensor:
    """Whole photos squashed to size x size (the paper's protocol), normalised for the backbone."""
    batch = np.stack([resize_to(im, (size, size))[..., ::-1] for im in images_bgr])
    x = torch.from_numpy(np.ascontiguousarray(batch)).to(device).permute(0, 3, 1, 2).float() / 255.0
    return normalise_rgb(x, backbone)


@torch.no_grad()
def evaluate(net: DefocusDepthNet, samples: Sequence[Sample], size: int, device: torch.device, batch: int = 6) -> DatasetScores:
    """Score the model on whole photos; predictions are resized back to each mask's native size."""
    was_training = net.training
    net.eval()
    acc = ScoreAccumulator()
    for i in range(0, len(samples), batch):
        chunk = samples[i : i + batch]
        in_focus, _ = net.predict(model_input([s.image for s in chunk], size, net.config.backbone, device))
        for s, p in zip(chunk, in_focus.float().cpu().numpy()[:, 0]):
            h, w = s.in_focus.shape
            acc.add(np.clip(cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1), s.in_focus)
    net.train(was_training)
    return acc.summary()


# ---------------------------------------------------------------- loop


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def step_size(sizes: Sequence[int], seed: int, step: int) -> int:
    """This step's training size, drawn from (seed, step) so a resumed run repeats it."""
    return sizes[int(np.random.default_rng([seed, step, 11]).integers(len(sizes)))] if len(sizes) > 1 else sizes[0]


def rescale_batch(image: torch.Tensor, mask: torch.Tensor, depth: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch made at --train-size shrunk to `size`: area for the photo and depth, the mask re-binarised."""
    if image.shape[-1] == size:
        return image, mask, depth

    def shrink(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, size=(size, size), mode="area")

    return shrink(image), (shrink(mask) >= 0.5).to(mask.dtype), shrink(depth)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then poly decay (power 0.9) to zero at the last step."""
    warmup = min(cfg.warmup_steps, total // 5)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    return cfg.lr * (1 - min(step, total - 1) / total) ** 0.9


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def versions() -> dict[str, str]:
    import timm

    return {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__, "numpy": np.__version__}


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def make_network(cfg: TrainConfig, device: torch.device, log: Console) -> DefocusDepthNet:
    """A fresh network (ImageNet encoder), or --init's weights for fine-tuning (same network only)."""
    net = DefocusDepthNet(cfg.model_config(), pretrained=cfg.pretrained and cfg.init is None).to(device)
    if cfg.init is not None:
        start = load_checkpoint(Path(cfg.init))
        if json.loads(start["model_config"]) != json.loads(json.dumps(cfg.model_config().to_dict())):
            raise ValueError(f"{cfg.init}: its network ({json.loads(start['model_config'])['backbone']}) differs from --backbone/--decoder")
        net.load_state_dict(start["model"])
        log.print(f"weights from {cfg.init} (epoch {start.get('epoch', '?')})")
    return net


def make_optimizer(net: DefocusDepthNet, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with four parameter groups: encoder or decoder (the decoder learns decoder_lr_mult
    times faster), and weights that decay or norms and biases that do not."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in net.named_parameters():
        groups.setdefault((name.startswith("encoder."), p.ndim > 1), []).append(p)
    return torch.optim.SGD(
        [
            {"params": ps, "weight_decay": cfg.weight_decay if decays else 0.0, "lr_mult": 1.0 if is_encoder else cfg.decoder_lr_mult}
            for (is_encoder, decays), ps in sorted(groups.items())
        ],
        lr=cfg.lr,
        momentum=cfg.momentum,
    )


@dataclass
class RunState:
    """Where a run stands: the next epoch, the optimiser step, the best validation F-beta."""

    epoch: int = 0
    step: int = 0
    best_f: float = -1.0


def resume_from(path: Path, net: DefocusDepthNet, opt: torch.optim.Optimizer, log: Console) -> RunState:
    ckpt = load_checkpoint(path / "last.pt" if path.is_dir() else path)
    net.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["torch_rng"])
    log.print(f"resumed {path} at epoch {ckpt['epoch']}, step {ckpt['step']}")
    return RunState(int(ckpt["epoch"]), int(ckpt["step"]), float(ckpt["best_f"]))


@dataclass
class EpochStats:
    loss: float = 0.0
    defocus: float = 0.0
    depth: float = 0.0
    seen: int = 0


def train_epoch(model: torch.nn.Module, loader: Any, opt: torch.optim.Optimizer, scaler: Any, cfg: TrainConfig, state: RunState, total_steps: int, on_step: Any) -> EpochStats:
    """One pass over `loader`; advances `state.step`."""
    device = next(model.parameters()).device
    weights = LossWeights(cfg.alpha, cfg.beta, cfg.gamma, cfg.defocus_loss)
    sizes = cfg.sizes()
    stats = EpochStats()
    model.train()
    for batch in loader:
        for g in opt.param_groups:
            g["lr"] = lr_at(state.step, total_steps, cfg) * g["lr_mult"]
        image, mask, depth = rescale_batch(batch["image"].to(device).float() / 255.0, batch["mask"].to(device), batch["depth"].to(device), step_size(sizes, cfg.seed, state.step))
        x = normalise_rgb(image, cfg.backbone)
        with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
            outputs = model(x)
        terms = total_loss(outputs, mask, depth, batch["has_depth"].to(device), weights)
        opt.zero_grad(set_to_none=True)
        scaler.scale(terms.total).backward()
        scaler.step(opt)
        scaler.update()
        if not math.isfinite(terms.total.item()):
            raise FloatingPointError(f"loss became {terms.total.item()} at step {state.step}; lower --lr")
        state.step += 1
        stats.seen += x.shape[0]
        stats.loss += terms.total.item()
        stats.defocus += terms.defocus.item()
        stats.depth += terms.depth.item()
        on_step(stats)
    return stats


def setup_device(cfg: TrainConfig) -> tuple[torch.device, DistInfo]:
    """The device this process trains on, and its place in a distributed run."""
    device = pick_device(cfg.device)
    info = init_distributed(device)
    if device.type == "cuda" and info.world > 1:
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    return device, info


def count_steps(samples: int, cfg: TrainConfig, info: DistInfo) -> int:
    """Optimiser steps per epoch for this process (full batches only)."""
    steps = len(epoch_order(samples, cfg.seed, 0, info.rank, info.world, cfg.batch)) // cfg.batch
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    if steps == 0:
        raise ValueError(f"{samples} training images are fewer than one batch of {cfg.batch} per process")
    return steps


def close_epoch(net: DefocusDepthNet, opt: torch.optim.Optimizer, cfg: TrainConfig, val: Sequence[Sample], state: RunState, run: RunFolder, record: dict[str, Any]) -> bool:
    """Validate, then save and log the epoch (rank 0); returns whether it is the best so far."""
    is_best = True
    if val:
        scores = evaluate(net, val, cfg.train_size, next(net.parameters()).device)
        record.update({f"val_{k}": v for k, v in scores.as_dict().items()})
        is_best = scores.f_beta > state.best_f
        state.best_f = max(state.best_f, scores.f_beta)
    payload = {"version": CHECKPOINT_VERSION, "model": net.state_dict(), "model_config": json.dumps(cfg.model_config().to_dict()), "optimizer": opt.state_dict()}
    payload |= {"epoch": state.epoch, "step": state.step, "best_f": state.best_f, "torch_rng": torch.get_rng_state(), "metrics": json.dumps(record)}
    run.save_checkpoint(payload, best=is_best)
    run.log(record)
    return is_best


def _log_baseline(net: torch.nn.Module, val: Any, cfg: TrainConfig, device: torch.device, run: RunFolder, log: Console) -> None:
    """The untrained model's validation scores, so every run shows what training bought."""
    init = evaluate(net, val, cfg.train_size, device)
    run.log({"epoch": 0, "step": 0, **{f"val_{k}": v for k, v in init.as_dict().items()}})
    log.print(f"untrained: val MAE {init.mae:.4f} F-beta {init.f_beta:.4f}")


def _epoch_record(stats: EpochStats, state: RunState, epoch_time: float, steps_per_epoch: int, total_steps: int, cfg: TrainConfig, world: int) -> dict[str, Any]:
    """One epoch's line of metrics.jsonl (validation scores are added by close_epoch)."""
    return {
        "epoch": state.epoch,
        "step": state.step,
        "lr": lr_at(state.step - 1, total_steps, cfg),
        "loss": stats.loss / steps_per_epoch,
        "defocus": stats.defocus / steps_per_epoch,
        "depth": stats.depth / steps_per_epoch,
        "images_per_s": stats.seen * world / epoch_time,
        "epoch_s": epoch_time,
    }


def train(cfg: TrainConfig, resume: Path | None = None, console: Console | None = None) -> dict[str, Any]:
    """Train and return the final epoch's record; the run folder is written on rank 0."""
    console = console or Console(stderr=True)
    device, info = setup_device(cfg)
    torch.manual_seed(cfg.seed)
    log = console if info.main else Console(quiet=True)
    run = RunFolder(Path(cfg.out), write=info.main)

    data = prepare_data(cfg, log)
    for w in data.warnings:
        log.print(f"[yellow]warning:[/] skipped {w}")
    net = make_network(cfg, device, log) if resume is None else DefocusDepthNet(cfg.model_config(), pretrained=False).to(device)
    opt = make_optimizer(net, cfg)
    state = resume_from(resume, net, opt, log) if resume is not None else RunState()
    model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None) if info.world > 1 else net

    dataset = AugmentedDataset(data.train, AugmentConfig(size=cfg.train_size), cfg.seed)
    steps_per_epoch = count_steps(len(dataset), cfg, info)
    total_steps = steps_per_epoch * cfg.epochs
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    run.write_config(
        {"train": dataclasses.asdict(cfg), "model": cfg.model_config().to_dict(), "data": data.provenance, "versions": versions(), "device": str(device), "world_size": info.world}
    )
    if info.main and data.val and state.epoch == 0:
        _log_baseline(net, data.val, cfg, device, run, log)

    record: dict[str, Any] = {}
    with _progress(log) as progress:
        task = progress.add_task("train", total=total_steps, completed=state.step, info="")
        end_epoch = min(cfg.epochs, state.epoch + cfg.stop_after_epochs) if cfg.stop_after_epochs else cfg.epochs
        for epoch in range(state.epoch, end_epoch):
            dataset.epoch = epoch
            order = epoch_order(len(dataset), cfg.seed, epoch, info.rank, info.world, cfg.batch)[: steps_per_epoch * cfg.batch]
            loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, order), batch_size=cfg.batch, shuffle=False, num_workers=cfg.workers, drop_last=True)
            t0 = time.perf_counter()

            def on_step(stats: EpochStats) -> None:
                n = state.step - epoch * steps_per_epoch
                rate = stats.seen * info.world / (time.perf_counter() - t0)
                info_text = f"ep {epoch + 1}/{cfg.epochs} loss {stats.loss / n:.3f} (defocus {stats.defocus / n:.3f}, depth {stats.depth / n:.4f}) {rate:.1f} img/s"
                progress.update(task, advance=1, info=info_text)

            stats = train_epoch(model, loader, opt, scaler, cfg, state, total_steps, on_step)
            epoch_time = time.perf_counter() - t0
            state.epoch = epoch + 1
            record = _epoch_record(stats, state, epoch_time, steps_per_epoch, total_steps, cfg, info.world)
            if info.main:
                is_best = close_epoch(net, opt, cfg, data.val, state, run, record)
                val = f" val MAE {record['val_mae']:.4f} F-beta {record['val_f_beta']:.4f}" if data.val else ""
                progress.console.print(
                    f"epoch {state.epoch}/{cfg.epochs}: loss {record['loss']:.4f}{val} {record['images_per_s']:.1f} img/s {epoch_time:.0f}s{' (best)' if is_best and data.val else ''}"
                )
            if info.world > 1:
                dist.barrier()
    if info.world > 1:
        dist.destroy_process_group()
    return record
