#!/usr/bin/env bash
# WNLI through WSC (the paper's test submission, after RoBERTa): trains on SuperGLUE WSC, scoring each candidate
# noun phrase in place of the pronoun with the masked-LM head; --criterion freelb_wsc ranks a text's candidates
# against each other and perturbs them as one group. Data: python -m fairseq_freelb.glue.preprocess --tasks
# WNLI-wsc --wsc-dir SuperGLUE/WSC (WNLI-wsc-bin, which also maps WNLI's dev and test rows onto WSC groups).
# Test rows: python -m fairseq_freelb.glue.submission --checkpoints WNLI=<this run's checkpoint_best.pt>.
# The pretrained model needs its masked-LM head (fairseq's roberta.* have one; a converted model without one is
# refused). Where each number comes from (docs/glue.md):
#   FreeLB paper, appendix A.2 (WSC/WNLI): epsilon 1e-2 (--adv-max-norm), alpha 5e-3 (--adv-lr), m = 2 ascent
#     steps (--adv-steps 3: m ascent steps are m + 1 gradient passes here). No random start is given: delta_0 = 0.
#   fairseq's RoBERTa WSC recipe: lr 2e-5, batch 16, 2000 updates, 250 warmup, Adam betas (0.9, 0.98),
#     weight decay 0.01, fp16; the cross-entropy variant of its loss (--wsc-cross-entropy).
# The two sources set different numbers, so they do not disagree. Validation: per-row accuracy on WSC val.
# Environment variables and arguments: see common.sh. Example:
#   ROBERTA_PATH=roberta.large/model.pt SEED=1 examples/roberta_glue/wnli_wsc.sh
set -euo pipefail
TASK=WNLI-wsc
NUM_CLASSES=1  # unused: candidates are scored by the masked-LM head
LR=${LR:-2e-5}
BSZ=${BSZ:-16}
TOTAL_UPDATES=${TOTAL_UPDATES:-2000}
WARMUP_UPDATES=${WARMUP_UPDATES:-250}
ADAM_BETAS=${ADAM_BETAS:-(0.9, 0.98)}
TABLE7_EPS=0.01    # epsilon (appendix A.2): --adv-max-norm
TABLE7_ALPHA=0.005 # alpha (appendix A.2): --adv-lr
TABLE7_M=2         # m ascent steps (appendix A.2): --adv-steps m+1 passes
OFFICIAL_INIT_MAG=0  # appendix A.2 gives no random start: --adv-init-mag 0
TRAIN_TASK=(--task freelb_wsc --criterion freelb_wsc)
TASK_FLAGS=(--weight-decay 0.01 --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
