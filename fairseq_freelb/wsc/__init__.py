"""WSC through the masked-LM head, and WNLI mapped onto it (Liu et al. 2019's formulation, trained with FreeLB).

A candidate noun phrase is put in place of the pronoun, masked, and scored by
the mean log-probability the masked-LM head gives its tokens; the candidates
of one text and pronoun are ranked against each other, and FreeLB perturbs
them as one group (Zhu et al. 2020, appendices A.1 and A.2).

Modules: :mod:`~fairseq_freelb.wsc.formats` (SuperGLUE WSC JSONL, candidate
groups) and :mod:`~fairseq_freelb.wsc.wnli_mapping` (WNLI rows as candidate
groups) import neither torch nor fairseq; :mod:`~fairseq_freelb.wsc.encoding`,
:mod:`~fairseq_freelb.wsc.dataset`, :mod:`~fairseq_freelb.wsc.scoring`,
:mod:`~fairseq_freelb.wsc.lm_head`, the ``freelb_wsc`` task and criterion
(:mod:`~fairseq_freelb.wsc.task`, :mod:`~fairseq_freelb.wsc.criterion`) and
:mod:`~fairseq_freelb.wsc.inference`. The GLUE side (data folder, WNLI.tsv) is
:mod:`fairseq_freelb.glue.wnli_wsc`. Documentation: docs/glue.md.
"""
