#!/usr/bin/env bash
# Cluster scaling and memory benchmark on one machine, loopback only.
#
# 1. Runs the same input on one silo process pinned to one core (taskset) with one compute
#    thread, then on two such processes on two cores, and prints the throughput ratio.
# 2. Runs a longer input with the same segment size on the two silos and prints each silo's
#    peak anonymous memory (RssAnon, sampled), which should not grow with the sequence length.
#
# Usage: scripts/scaling-bench.sh [tokens] [long-tokens]   (defaults 262144 and 1048576)
# Environment: SEGMENT_TOKENS (default 16384), HEADS (8), DIM (64), KEEP=1 keeps the work folder.
set -euo pipefail

tokens=${1:-262144}
long_tokens=${2:-1048576}
segment=${SEGMENT_TOKENS:-16384}
heads=${HEADS:-8}
dim=${DIM:-64}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/powerret-scaling.XXXXXX)
pids=()

cleanup() {
    for pid in "${pids[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

echo "Building Release binaries..."
dotnet build "$root/src/Client/PowerRetention.Cli" -c Release -v quiet -nologo > "$work/build.log"
dotnet build "$root/src/Silo" -c Release -v quiet -nologo >> "$work/build.log"
cli="$root/src/Client/PowerRetention.Cli/bin/Release/net10.0/powerret.dll"
silo="$root/src/Silo/bin/Release/net10.0/powerret-silo.dll"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
        || echo $((20000 + RANDOM % 20000))
}

# Starts a silo pinned to one core; waits for its ready line.
start_silo() {
    local core=$1 silo_port=$2 gateway_port=$3 primary=${4:-}
    local log="$work/silo-$silo_port.log"
    local args=(--silo-port "$silo_port" --gateway-port "$gateway_port" --threads 1)
    [ -n "$primary" ] && args+=(--primary "127.0.0.1:$primary")
    taskset -c "$core" dotnet "$silo" "${args[@]}" > "$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 120); do
        grep -q "Silo ready" "$log" && return 0
        sleep 0.5
    done
    echo "silo on port $silo_port did not start; its output:" >&2
    cat "$log" >&2
    exit 1
}

# Samples the peak RssAnon (kB) of the given processes while a command runs.
run_sampled() {
    local out=$1; shift
    local samples="$work/samples.txt"
    : > "$samples"
    ( while true; do
        for pid in "${pids[@]}"; do
            awk -v pid="$pid" '/RssAnon/ { print pid, $2 }' "/proc/$pid/status" 2>/dev/null || true
        done >> "$samples"
        sleep 0.2
    done ) &
    local sampler=$!
    local start end
    start=$(date +%s.%N)
    "$@" > "$out" 2>&1
    end=$(date +%s.%N)
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    elapsed=$(echo "$end - $start" | bc -l)
    peaks=$(sort -k1,1 -k2,2n "$samples" | awk '{ peak[$1] = $2 } END { for (p in peak) printf "%s:%d MiB ", p, peak[p] / 1024 }')
}

synth() {
    local n=$1 dir=$2
    dotnet "$cli" synth --tokens "$n" --heads "$heads" --dim "$dim" --gating --dtype bf16 --out "$dir" > /dev/null
}

report() {
    local label=$1 n=$2 out=$3
    local rate
    rate=$(echo "$n * $heads / $elapsed" | bc -l)
    printf '%-28s tokens %8d  %7.1f s  %10.0f token-heads/s  peak RssAnon %s\n' "$label" "$n" "$elapsed" "$rate" "$peaks"
    grep -iE "segment|state" "$out" | sed 's/^/    /' || true
}

echo "Synthesising $tokens tokens (h=$heads, d=$dim, gated, bfloat16)..."
synth "$tokens" "$work/short"

p1=$(free_port); g1=$(free_port); p2=$(free_port); g2=$(free_port)
start_silo 0 "$p1" "$g1"
run_sampled "$work/run1.txt" dotnet "$cli" run --cluster "127.0.0.1:$g1" --input "$work/short/inputs.safetensors" --out "$work/y1.safetensors" --segment-tokens "$segment"
one_silo=$elapsed
report "1 silo, 1 core" "$tokens" "$work/run1.txt"

start_silo 1 "$p2" "$g2" "$p1"
run_sampled "$work/run2.txt" dotnet "$cli" run --cluster "127.0.0.1:$g1,127.0.0.1:$g2" --input "$work/short/inputs.safetensors" --out "$work/y2.safetensors" --segment-tokens "$segment"
two_silos=$elapsed
report "2 silos, 1 core each" "$tokens" "$work/run2.txt"
printf 'Scaling ratio (1 silo time / 2 silos time): %.2f\n' "$(echo "$one_silo / $two_silos" | bc -l)"

if [ "$long_tokens" -gt 0 ]; then
    rm -rf "$work/short" "$work"/y*.safetensors
    echo "Synthesising $long_tokens tokens..."
    synth "$long_tokens" "$work/long"
    run_sampled "$work/run3.txt" dotnet "$cli" run --cluster "127.0.0.1:$g1,127.0.0.1:$g2" --input "$work/long/inputs.safetensors" --out "$work/y3.safetensors" --segment-tokens "$segment"
    report "2 silos, long input" "$long_tokens" "$work/run3.txt"
fi
