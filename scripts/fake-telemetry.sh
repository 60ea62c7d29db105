#!/usr/bin/env bash
# Write a fake RAPL powercap tree and a scripted fake-NVML script under DIR, so the sampler's cost
# with every source enabled can be measured on a machine without RAPL or a GPU (the fake NVML
# library itself is built by harness/build.rs: target/<profile>/build/charter-*/out/libfake_nvml.so).
#
#   scripts/fake-telemetry.sh DIR   → DIR/powercap (for --powercap-root), DIR/nvml.txt (FAKE_NVML_SCRIPT)
set -euo pipefail
d=${1:?usage: scripts/fake-telemetry.sh DIR}
for p in 0 1; do
  z="$d/powercap/intel-rapl:$p"
  mkdir -p "$z"
  echo "package-$p" > "$z/name"
  echo $((123456789 + p)) > "$z/energy_uj"
  echo 262143328850 > "$z/max_energy_range_uj"
done
{
  echo "driver_version=fake"
  echo "device 0 uuid=GPU-fake-0 mem_total=85899345920 power_limit_mw=700000 name=Fake GPU"
  for i in $(seq 0 20000); do
    echo "tick 0 util=$((i % 100)) mem_util=10 mem_used=$((1000000 + i)) power_mw=150000 energy_mj=$((1000000 + 15 * i)) temp=50 sm_clock=1410"
  done
} > "$d/nvml.txt"
echo "wrote $d/powercap and $d/nvml.txt"
