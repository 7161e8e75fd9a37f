#!/usr/bin/env bash
# Checks the CUDA backend on a GPU machine.
#
#   scripts/gpu-check.sh build   (needs the .NET SDK) publishes tools/GpuCheck as a self-contained
#                                linux-x64 program into artifacts/gpu-check/, with the reference
#                                vector cases and a copy of this script.
#   scripts/gpu-check.sh run     (needs no SDK) runs the vector cases and the benchmark on CUDA,
#                                then times PyTorch's causal scaled_dot_product_attention on the
#                                same shape when python3 can import torch.
#
# On a GPU machine, copy artifacts/gpu-check/ there and run artifacts/gpu-check/gpu-check.sh run.
# Without a usable CUDA device, run prints one line starting "gpu-check: " and exits with code 2.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"

build() {
    local root out
    root="$(cd "$here/.." && pwd)"
    out="$root/artifacts/gpu-check"
    rm -rf "$out"
    dotnet publish "$root/tools/GpuCheck/GpuCheck.csproj" -c Release -r linux-x64 --self-contained \
        -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -p:DebugType=none \
        -o "$out/bin"
    mkdir -p "$out/vectors"
    cp -r "$root/tests/PowerRetention.Kernels.Tests/TestData/vectors/." "$out/vectors/"
    cp "$here/gpu-check.sh" "$out/gpu-check.sh"
    echo "gpu-check: published $(du -sh "$out" | cut -f1) to $out"
}

run() {
    # The script runs from scripts/ in a checkout or from the published folder itself.
    local out
    if [ -x "$here/bin/GpuCheck" ]; then
        out="$here"
    else
        out="$(cd "$here/.." && pwd)/artifacts/gpu-check"
    fi

    if [ ! -x "$out/bin/GpuCheck" ]; then
        echo "gpu-check: $out/bin/GpuCheck not found; run 'scripts/gpu-check.sh build' first" >&2
        exit 3
    fi

    # Budget: the whole run stays under 10 minutes.
    local status=0
    timeout 420 "$out/bin/GpuCheck" --vectors "$out/vectors" --bench --cpu-baseline || status=$?
    if [ "$status" -eq 2 ] || [ "$status" -eq 124 ]; then
        [ "$status" -eq 124 ] && echo "gpu-check: GpuCheck timed out after 420 s" >&2
        exit "$status"
    fi

    if python3 -c "import torch" >/dev/null 2>&1; then
        timeout 120 python3 - <<'PYTHON' || echo "gpu-check: the PyTorch timing failed" >&2
import torch
import torch.nn.functional as F

if not torch.cuda.is_available():
    print("pytorch: no CUDA device visible to torch, skipped")
    raise SystemExit(0)

b, h, t, d = 1, 8, 65536, 64
q, k, v = (torch.randn(b, h, t, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
for _ in range(2):
    F.scaled_dot_product_attention(q, k, v, is_causal=True)
torch.cuda.synchronize()

runs = 5
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
for _ in range(runs):
    F.scaled_dot_product_attention(q, k, v, is_causal=True)
end.record()
torch.cuda.synchronize()
ms = start.elapsed_time(end) / runs

# Causal attention does half of Q K^T and half of P V: t^2 d multiply-adds per head, so 2 t^2 d flops.
flops = 2.0 * b * h * t * t * d
print(f"pytorch {torch.__version__} sdpa causal bf16 (b=1 t={t} h={h} d={d}): {ms:.1f} ms, {flops / (ms * 1e9):.1f} TFLOP/s")
PYTHON
    else
        echo "pytorch: python3 cannot import torch, skipped"
    fi

    exit "$status"
}

case "${1:-}" in
    build) build ;;
    run) run ;;
    *)
        echo "usage: $0 build|run" >&2
        exit 64
        ;;
esac
