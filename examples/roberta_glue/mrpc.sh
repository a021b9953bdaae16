#!/usr/bin/env bash
# MRPC: where each number comes from (docs/glue.md, "Hyperparameters"):
#   fairseq's RoBERTa GLUE recipe: batch 16, 2296 updates, 137 warmup, 10 epochs, lr 1e-5.
#   FreeLB paper, Table 7: epsilon 0.4 (--adv-max-norm), alpha 0.04 (--adv-lr), m = 3 ascent steps
#     (--adv-steps 4: m ascent steps are m + 1 gradient passes here).
#   Official FreeLB launch script (zhuchen03/FreeLB, fairseq-RoBERTa/launch/FreeLB/), last active line:
#     adv-lr 0.04, adv-steps 3, rand-init-mag 0.64 (--adv-init-mag), max-norm 0.4, lr 5e-6,
#     2 x 8 sentences x update-freq, Adam betas (0.9, 0.999). The random start and the betas come from it.
# Where they disagree: Table 7 and the official script agree on alpha, epsilon and m. lr: the official 5e-6 under adversarial
# training, fairseq's 1e-5 for none.
# Test submission: the paper starts RTE, MRPC and STS-B from a fine-tuned MNLI model (section 4.1, after RoBERTa):
#   INIT_FROM=checkpoints/MNLI/freelb-seed1/checkpoint_best.pt replaces ROBERTA_PATH; the MNLI head is dropped (common.sh).
# Environment variables and arguments: see common.sh. Example:
#   ROBERTA_PATH=roberta.large/model.pt ADV_METHOD=freelb SEED=1 examples/roberta_glue/mrpc.sh
set -euo pipefail
TASK=MRPC
NUM_CLASSES=2
if [ "${ADV_METHOD:-freelb}" = "none" ]; then LR=${LR:-1e-5}; else LR=${LR:-5e-6}; fi
BSZ=${BSZ:-16}
TOTAL_UPDATES=${TOTAL_UPDATES:-2296}
WARMUP_UPDATES=${WARMUP_UPDATES:-137}
TABLE7_EPS=0.4     # epsilon: --adv-max-norm
TABLE7_ALPHA=0.04   # alpha: --adv-lr
TABLE7_M=3        # m ascent steps: --adv-steps m+1 passes
OFFICIAL_INIT_MAG=0.64  # rand-init-mag of the official launch script: --adv-init-mag
TASK_FLAGS=(--report-acc-and-f1 --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric)
MNLI_INIT=1  # INIT_FROM accepted
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
