"""Writing the converted model as fairseq's own ``roberta.base`` folder is written: model.pt + dict.txt + BPE files."""

from pathlib import Path

import torch

from fairseq_freelb.convert_hf.mapping import Conversion
from fairseq_freelb.convert_hf.reading import ConversionError, HFCheckpoint
from fairseq_freelb.convert_hf.vocabulary import bpe_flags, write_vocabulary


def _fairseq_cfg(out_dir: Path, conversion: Conversion) -> dict:
    """The checkpoint's ``cfg``, built by fairseq's own parser as for a masked-LM pretraining run."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    argv = [str(out_dir), "--task", "masked_lm", "--criterion", "masked_lm", *conversion.model_args, "--cpu"]
    argv += bpe_flags(out_dir, conversion.bpe_args)
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, input_args=argv)
    cfg = convert_namespace_to_omegaconf(args)
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def _build_fairseq_model(cfg_container: dict, data_dir: Path):
    from fairseq import tasks
    from omegaconf import OmegaConf

    # cfg.model of a legacy (argparse) architecture such as roberta_base is an
    # argparse.Namespace; fairseq's checkpoint loader opens it the same way.
    cfg = OmegaConf.create(cfg_container, flags={"allow_objects": True})
    cfg.task.data = str(data_dir)
    task = tasks.setup_task(cfg.task)
    return task, task.build_model(cfg.model)


def write_output(ckpt: HFCheckpoint, conversion: Conversion, out_dir, final_dir=None) -> Path:
    """Write dict.txt, the BPE files and model.pt (loaded back into a fairseq model as a check).

    ``out_dir`` is where the files go now; ``final_dir`` (default ``out_dir``) is where they
    will live, which the checkpoint's ``cfg`` records as its data and BPE paths.
    """
    out_dir = Path(out_dir).resolve()
    final_dir = Path(final_dir).resolve() if final_dir is not None else out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    write_vocabulary(ckpt, conversion.symbols, out_dir)

    cfg = _fairseq_cfg(final_dir, conversion)
    task, model = _build_fairseq_model(cfg, out_dir)
    expected = len(conversion.source_ids)
    if len(task.source_dictionary) != expected:
        raise ConversionError(
            f"{out_dir / 'dict.txt'}: fairseq built a dictionary of {len(task.source_dictionary)} symbols, expected {expected}"
        )
    missing, unexpected = model.load_state_dict(conversion.state, strict=False)
    # Only the (optional) masked-LM head may keep fairseq's initialisation.
    missing = [k for k in missing if not k.startswith("encoder.lm_head.")]
    if missing or unexpected:
        raise ConversionError(f"{out_dir}: converted weights do not fit fairseq's model: missing {missing}, unexpected {unexpected}")

    state = {
        "args": None,
        "cfg": cfg,
        "model": model.state_dict(),
        "criterion": {},
        "optimizer_history": [
            {"criterion_name": "MaskedLmLoss", "optimizer_name": "None", "lr_scheduler_state": {}, "num_updates": 0}
        ],
        "task_state": {},
        # Whether encoder.lm_head holds the source's trained head or fairseq's random initialisation:
        # the WSC formulation scores with it and refuses a random one (fairseq_freelb.wsc.lm_head).
        "extra_state": {"converted_from": str(ckpt.folder),
                        "masked_lm_head": "encoder.lm_head.dense.weight" in conversion.state},
        "last_optimizer_state": None,
    }
    torch.save(state, out_dir / "model.pt")
    return out_dir
