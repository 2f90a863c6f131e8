#!/usr/bin/env bash
# Turn a finished training run into the shipped default model (what MODEL_CARD.md describes):
#   examples/ship_default_model.sh runs/cuhk_lite0_g0.1 [best|last]
# Copies the best-F-beta (default) or the final-epoch checkpoint with its run files under
# trainer/checkpoints/, exports the embedded ONNX, and scores it on the run's validation photos.
set -euo pipefail
run=${1:?usage: $0 RUN_FOLDER [best|last]}
which=${2:-best}
data=${DATA:-data/cuhk_dbd}  # as dbd-prepare cuhk writes it (README: Reproduce the model)
dest=trainer/checkpoints/dbd_lite0_320
mkdir -p "$dest" docs
cp "$run/config.json" "$run/metrics.jsonl" "$dest/"
# last.pt also holds the optimizer state and RNG for --resume; the shipped file keeps what best.pt keeps.
python -c "
import torch
ckpt = torch.load('$run/$which.pt', map_location='cpu', weights_only=True)
torch.save({k: ckpt[k] for k in ('version', 'model', 'model_config', 'epoch', 'metrics')}, '$dest/best.pt')
"
python -c "import json,sys; print('\n'.join(json.load(open('$dest/config.json'))['data']['val_names']))" > "$dest/val.txt"
dbd-export onnx "$dest/best.pt" --out runtime/models/dbd_lite0_320.onnx --dynamic --fp16
dbd-bench eval --data "$data" --mask-in-focus black --names "$dest/val.txt" --baseline hifst --plot docs/pr_validation.png --per-image docs/validation_per_image.csv
