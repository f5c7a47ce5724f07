# Environment shared by the maas scripts: the project venv first on PATH and
# LibTorch taken from that venv's PyTorch. Source it; it sets nothing else.
MAAS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MAAS_ROOT
export PATH="$MAAS_ROOT/.venv/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
export MAAS_TARGET_DIR="${CARGO_TARGET_DIR:-$MAAS_ROOT/target}"
