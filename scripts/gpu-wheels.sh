#!/usr/bin/env bash
# Fills .gpu-kit/ (git-ignored) with what scripts/gpu-check.sh needs on a GPU machine that reaches no
# registry: the wheels its image lacks, for its Python and platform, and the embedded model's config
# and tokenizer (the check builds random weights from them). Carry the folder with the run.
# The device image (Python 3.12, x86-64) has torch, transformers, peft, accelerate, numpy, pandas,
# pyyaml and tqdm, but not bitsandbytes or SQLAlchemy.
set -euo pipefail
cd "$(dirname "$0")/.."
kit=${GUANACO_GPU_KIT:-.gpu-kit}
pyver=${GPU_PYTHON_VERSION:-3.12}
python=$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)
version() { "$python" -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p "$kit/wheels" "$kit/smollm2"
rm -f "$kit"/wheels/*.whl
for name in bitsandbytes sqlalchemy greenlet; do
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$kit/wheels" "$name==$(version "$name")"
done
source=$("$python" -c 'from trainer.model import resolve_base; print(resolve_base("smollm2"))')
for file in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja \
            special_tokens_map.json; do
  [ -f "$source/$file" ] && cp "$source/$file" "$kit/smollm2/"
done
du -sh "$kit"
echo "carry $kit with the run: scripts/gpu-check.sh OUTDIR"
