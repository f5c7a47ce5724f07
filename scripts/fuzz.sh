#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ (docs/SECURITY.md, "Fuzzing"), each for a
# bounded time, one process on one core at the lowest priority, and prints
# the executions and findings of each. Not part of CI.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 60, or MAAS_FUZZ_SECONDS); every target when
# none is named. Also read from the environment:
#   MAAS_FUZZ_SANITIZER  address (default) or none
#   MAAS_FUZZ_LOG_DIR    where fuzz-<target>.log goes (default fuzz/logs)
#   CARGO_TARGET_DIR     the build folder (default fuzz/target)
#
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets a stable
# toolchain accept them. The checked-in seeds (fuzz/corpus/<target>/seed-*)
# are rewritten by fuzz/seeds when missing; what a run adds to a corpus
# stays local. A crash, a panic, a timeout or an input that allocates past
# the limits below is written to fuzz/artifacts/<target>/, and the script
# exits 1.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${1:-${MAAS_FUZZ_SECONDS:-60}}"
shift || true
sanitizer="${MAAS_FUZZ_SANITIZER:-address}"
log_dir="${MAAS_FUZZ_LOG_DIR:-$root/fuzz/logs}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/fuzz/target}"

all_targets=(frame_decode http_infer_json http_infer_binary grpc_outline grpc_tensor model_config)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    nice -n 19 cargo install cargo-fuzz --locked
fi

for target in "${targets[@]}"; do
    if ! compgen -G "fuzz/corpus/$target/seed-*" >/dev/null; then
        echo "writing the seed corpora"
        nice -n 19 cargo run -q --manifest-path fuzz/seeds/Cargo.toml -- fuzz/corpus
        break
    fi
done

mkdir -p "$log_dir"
echo "building ${targets[*]} (sanitizer: $sanitizer)"
for target in "${targets[@]}"; do
    nice -n 19 cargo fuzz build --sanitizer "$sanitizer" "$target"
done

# -rss_limit_mb and -malloc_limit_mb make an input that allocates far more
# than its own size a finding; -timeout makes a hang one.
libfuzzer_flags=(-max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -max_len=8192
    -print_final_stats=1)

summary=()
failed=0
for target in "${targets[@]}"; do
    log="$log_dir/fuzz-$target.log"
    echo "fuzzing $target for ${seconds}s (log: $log)"
    status=ok
    if ! nice -n 19 cargo fuzz run --sanitizer "$sanitizer" "$target" -- "${libfuzzer_flags[@]}" >"$log" 2>&1; then
        status="FINDING, see $log and fuzz/artifacts/$target/"
        failed=1
    fi
    runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)"
    [ -n "$runs" ] || runs="$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)"
    corpus="$(find "fuzz/corpus/$target" -type f | wc -l)"
    summary+=("$(printf '%-18s %8ss %12s runs %6s corpus  %s' "$target" "$seconds" "${runs:-?}" "$corpus" "$status")")
done

echo
printf '%s\n' "${summary[@]}"
exit "$failed"
