#!/usr/bin/env bash
# Validate deploy/k8s/*.yaml against the Kubernetes OpenAPI schema with kubernetes-validate
# (PyPI; it ships the schemas, so validation runs offline once installed), strict mode: unknown
# fields are errors. Then check what the schema cannot: the Indexed Job's completions,
# parallelism and --shards agree.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CHARTER_CACHE:-.cache}/kubernetes-validate
if ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet kubernetes-validate==1.37.0
fi
"$venv/bin/kubernetes-validate" --strict --quiet deploy/k8s/*.yaml
"$venv/bin/python" - <<'PY'
import re, yaml
job = yaml.safe_load(open("deploy/k8s/job.yaml"))
spec = job["spec"]
args = " ".join(spec["template"]["spec"]["containers"][0]["args"])
shards = int(re.search(r"--shards (\d+)", args).group(1))
assert spec["completionMode"] == "Indexed", "the Job must be Indexed (JOB_COMPLETION_INDEX)"
assert spec["completions"] == spec["parallelism"] == shards, (
    f"completions {spec['completions']}, parallelism {spec['parallelism']} and --shards {shards} must agree")
print(f"deploy/k8s: valid; Indexed Job of {shards} shards")
PY
