from setuptools import find_packages, setup

setup(
    name="fairseq_freelb",
    version="0.1.0",
    description="FreeLB and its adversarial baselines (PGD, FreeAT, YOPO) for fairseq and Hugging Face transformers",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.8",
    packages=find_packages(include=["fairseq_freelb", "fairseq_freelb.*"]),
    install_requires=[
        # Install torch yourself first (a CPU or CUDA build); any >= 2.0 works.
        "torch>=2.0",
        # fairseq 0.12.2 does not import on Python >= 3.11 (mutable dataclass
        # defaults); the maintained fork provides the same `fairseq` package.
        "fairseq==0.12.2; python_version < '3.11'",
        "fairseq-fixed==0.12.3.1; python_version >= '3.11'",
        "sentencepiece",
        "numpy",
        "scipy",
        "scikit-learn",
        "matplotlib",
        "tqdm",
    ],
    extras_require={
        # The Trainer adapter (fairseq_freelb.hf) follows transformers 5's Trainer, which needs accelerate.
        "hf": ["transformers>=5,<6", "accelerate==1.15.0", "safetensors"],
        # fairseq's --tensorboard-logdir (the adv_* meters as tensorboard scalars)
        "tensorboard": ["tensorboardX"],
        "test": ["pytest", "transformers>=5,<6", "accelerate==1.15.0", "safetensors", "tensorboardX"],
    },
    entry_points={
        "console_scripts": ["fairseq-freelb-hydra-train = fairseq_freelb.hydra_train:cli_main"],
    },
)
