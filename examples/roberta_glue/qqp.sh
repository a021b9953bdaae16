#!/usr/bin/env bash
# QQP: where each number comes from (docs/glue.md, "Hyperparameters"):
#   fairseq's RoBERTa GLUE recipe: batch 32, 113272 updates, 28318 warmup, 10 epochs, lr 1e-5.
#   FreeLB paper, Table 7: epsilon 0.45 (--adv-max-norm), alpha 0.15 (--adv-lr), m = 2 ascent steps
#     (--adv-steps 3: m ascent steps are m + 1 gradient passes here).
#   Official FreeLB launch script (zhuchen03/FreeLB, fairseq-RoBERTa/launch/FreeLB/), last active line:
#     adv-lr 0.2, adv-steps 2, rand-init-mag 0.32 (--adv-init-mag), max-norm 0.7, lr 1e-5,
#     32 x 1 sentences x update-freq, Adam betas (0.9, 0.999). The random start and the betas come from it.
# Where they disagree: max-norm: Table 7 says 0.45, the official script 0.7; adv-lr: Table 7 0.15, the script 0.2. This uses Table 7's
# (the paper's statement of alpha and epsilon).
# Environment variables and arguments: see common.sh. Example:
#   ROBERTA_PATH=roberta.large/model.pt ADV_METHOD=freelb SEED=1 examples/roberta_glue/qqp.sh
set -euo pipefail
TASK=QQP
NUM_CLASSES=2
LR=${LR:-1e-5}
BSZ=${BSZ:-32}
TOTAL_UPDATES=${TOTAL_UPDATES:-113272}
WARMUP_UPDATES=${WARMUP_UPDATES:-28318}
TABLE7_EPS=0.45     # epsilon: --adv-max-norm
TABLE7_ALPHA=0.15   # alpha: --adv-lr
TABLE7_M=2        # m ascent steps: --adv-steps m+1 passes
OFFICIAL_INIT_MAG=0.32  # rand-init-mag of the official launch script: --adv-init-mag
TASK_FLAGS=(--report-acc-and-f1 --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
