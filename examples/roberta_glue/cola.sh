#!/usr/bin/env bash
# CoLA: where each number comes from (docs/glue.md, "Hyperparameters"):
#   fairseq's RoBERTa GLUE recipe: batch 16, 5336 updates, 320 warmup, 10 epochs, lr 1e-5.
#   FreeLB paper, Table 7: epsilon 0.2 (--adv-max-norm), alpha 0.025 (--adv-lr), m = 3 ascent steps
#     (--adv-steps 4: m ascent steps are m + 1 gradient passes here).
#   Official FreeLB launch script (zhuchen03/FreeLB, fairseq-RoBERTa/launch/FreeLB/), last active line:
#     adv-lr 0.025, adv-steps 3, rand-init-mag 0.4 (--adv-init-mag), max-norm 0.3, lr 1e-5,
#     8 x 2 sentences x update-freq, Adam betas (0.9, 0.999). The random start and the betas come from it.
# Where they disagree: max-norm: Table 7 says 0.2, the official script 0.3; this uses Table 7's 0.2 (the paper's statement).
# Environment variables and arguments: see common.sh. Example:
#   ROBERTA_PATH=roberta.large/model.pt ADV_METHOD=freelb SEED=1 examples/roberta_glue/cola.sh
set -euo pipefail
TASK=CoLA
NUM_CLASSES=2
LR=${LR:-1e-5}
BSZ=${BSZ:-16}
TOTAL_UPDATES=${TOTAL_UPDATES:-5336}
WARMUP_UPDATES=${WARMUP_UPDATES:-320}
TABLE7_EPS=0.2     # epsilon: --adv-max-norm
TABLE7_ALPHA=0.025   # alpha: --adv-lr
TABLE7_M=3        # m ascent steps: --adv-steps m+1 passes
OFFICIAL_INIT_MAG=0.4  # rand-init-mag of the official launch script: --adv-init-mag
TASK_FLAGS=(--report-mcc --best-checkpoint-metric mcc --maximize-best-checkpoint-metric)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
