#!/usr/bin/env bash
# The GPU path in one run (docs/gpu.md): scripts/gpu-check.sh OUTDIR, or --plan to see what it runs.
# On a GPU machine the wheels that scripts/gpu-wheels.sh put in .gpu-kit/wheels are installed into a
# scratch folder first (that machine reaches no registry); on one without CUDA it stops at once.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ "${1:-}" = "--plan" ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  exec "$python" scripts/gpu_check.py "$@"
fi
if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu-check: no CUDA device here (or no torch for $python). Run it on a GPU machine (docs/gpu.md);" \
       "scripts/gpu-check.sh --plan shows what it would run." >&2
  exit 3
fi
kit=${GUANACO_GPU_KIT:-.gpu-kit}
if compgen -G "$kit/wheels/*.whl" >/dev/null; then
  site=$(mktemp -d /tmp/gpu-check-site.XXXX)
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$kit"/wheels/*.whl
  export PYTHONPATH="$PYTHONPATH:$site"
fi
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
exec "$python" scripts/gpu_check.py --kit "$kit" "$@"
