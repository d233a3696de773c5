#!/usr/bin/env bash
# Offline checks of the deployment files: the Kubernetes manifests (deploy/kubernetes,
# base and overlays/statefulset), the Prometheus alerts (config/prometheus) and how they
# fit the scrubgate config. Exits non-zero on the first failure.
#
#   scripts/check-deploy.sh
#   CHECK_DEPLOY_RENDER=python scripts/check-deploy.sh   # render without kubectl/kustomize
#
# 1. Installs pinned kubernetes-validate and checkov into .deploy-venv (once; quick when
#    already there) and promtool with `apt-get install prometheus` when it is missing.
# 2. Renders the base and the overlay: with `kubectl kustomize` (or `kustomize build`)
#    when there is one, and always with scripts/check_deploy.py's small kustomize; with
#    kubectl, both renders must hold the same objects.
# 3. Validates every rendered object against the Kubernetes $K8S_VERSION schemas
#    (kubernetes-validate --strict: unknown fields are errors; its schemas ship with it).
# 4. Runs checkov (kubernetes and secrets frameworks) on the renders: no failed check.
#    Skips are annotations on the workloads (checkov.io/skipN), each with its reason.
# 5. Cross-checks (check_deploy.py consistency): the StatefulSet's pod template is the
#    Deployment's, scrubgate.toml uses only documented keys, spool.max_bytes fits the
#    volumes and the alert, the grace period covers the shutdown, every alert has a
#    summary, a runbook row and tests firing and not firing.
# 6. promtool check rules and promtool test rules.
# 7. `scrubgate check` of the ConfigMap's scrubgate.toml and project files, when a built
#    binary is there ($SCRUBGATE_BIN, else target/release or target/debug); it never
#    builds one.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.30.0
KUBERNETES_VALIDATE_VERSION=1.37.0
CHECKOV_VERSION=3.3.30
VENV=.deploy-venv
PY="$VENV/bin/python"

step() { printf '\n== %s\n' "$*"; }

# --- 1. tools ------------------------------------------------------------------------------
step "tools"
pins="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION checkov==$CHECKOV_VERSION"
if [[ ! -x "$PY" ]]; then
  python3 -m venv "$VENV"
fi
if [[ "$(cat "$VENV/.pins" 2>/dev/null)" != "$pins" ]]; then
  # shellcheck disable=SC2086 # $pins is a list of requirements
  "$PY" -m pip install --quiet --disable-pip-version-check $pins
  echo "$pins" > "$VENV/.pins"
fi
echo "venv $VENV: $pins"
if ! command -v promtool >/dev/null; then
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "promtool is missing: install it with 'apt-get install prometheus' (needs root)" >&2
    exit 1
  fi
  apt-get install -y -qq prometheus >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq prometheus >/dev/null; }
fi
promtool --version 2>&1 | head -n1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- 2. render -----------------------------------------------------------------------------
step "render"
kustomize_cmd=()
if [[ "${CHECK_DEPLOY_RENDER:-}" == python ]]; then
  :  # as on a machine without kubectl or kustomize
elif command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  kustomize_cmd=(kubectl kustomize)
elif command -v kustomize >/dev/null; then
  kustomize_cmd=(kustomize build)
fi
mkdir -p "$work/rendered"
for target in base:deploy/kubernetes statefulset:deploy/kubernetes/overlays/statefulset; do
  name="${target%%:*}"
  dir="${target#*:}"
  "$PY" scripts/check_deploy.py render "$dir" > "$work/$name.python.yaml"
  if [[ ${#kustomize_cmd[@]} -gt 0 ]]; then
    "${kustomize_cmd[@]}" "$dir" > "$work/rendered/$name.yaml"
    printf '%s (%s): ' "$dir" "${kustomize_cmd[*]}"
    "$PY" scripts/check_deploy.py same "$work/rendered/$name.yaml" "$work/$name.python.yaml"
  else
    echo "$dir: no kubectl or kustomize here, rendered with scripts/check_deploy.py"
    cp "$work/$name.python.yaml" "$work/rendered/$name.yaml"
  fi
done

# --- 3. schemas ----------------------------------------------------------------------------
step "kubernetes-validate (Kubernetes $K8S_VERSION, strict)"
if ! "$VENV/bin/kubernetes-validate" -k "$K8S_VERSION" --strict \
    "$work/rendered/base.yaml" "$work/rendered/statefulset.yaml" > "$work/validate.log" 2>&1; then
  cat "$work/validate.log" >&2
  exit 1
fi
sed "s#$work/rendered/##" "$work/validate.log"
validated="$(grep -c ' passed for resource ' "$work/validate.log" || true)"
echo "kubernetes-validate: $validated manifests valid (base and overlays/statefulset)"

# --- 4. checkov ----------------------------------------------------------------------------
step "checkov"
checkov_status=0
"$VENV/bin/checkov" -d "$work/rendered" --framework kubernetes secrets --skip-download \
  --output json > "$work/checkov.json" 2> "$work/checkov.err" || checkov_status=$?
"$PY" - "$work/checkov.json" "$checkov_status" <<'EOF'
import json, sys

raw = open(sys.argv[1]).read()
status = int(sys.argv[2])
try:
    reports = json.loads(raw)
except ValueError:
    sys.exit(f"checkov gave no JSON report (exit {status}):\n{raw[:2000]}")
if isinstance(reports, dict):
    reports = [reports]
totals = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
for report in reports:
    summary = report.get("summary", {})
    for key in totals:
        totals[key] += summary.get(key, 0)
    results = report.get("results", {})
    for check in results.get("failed_checks", []):
        print(f"FAILED {check['check_id']} {check['check_name']}: {check['resource']} "
              f"({check['file_path']})")
    for check in results.get("skipped_checks", []):
        reason = check.get("check_result", {}).get("suppress_comment", "")
        print(f"skipped {check['check_id']} on {check['resource']}: {reason}")
print("checkov: {passed} passed, {failed} failed, {skipped} skipped, "
      "{parsing_errors} parsing errors".format(**totals))
if totals["failed"] or totals["parsing_errors"] or totals["passed"] == 0 or status not in (0,):
    sys.exit(f"checkov found problems (exit {status})")
EOF

# --- 5. consistency ------------------------------------------------------------------------
step "consistency"
"$PY" scripts/check_deploy.py consistency "$work/rendered/base.yaml" "$work/rendered/statefulset.yaml"

# --- 6. alerts -----------------------------------------------------------------------------
step "promtool"
promtool check rules config/prometheus/alerts.yml
promtool test rules config/prometheus/alerts_test.yml

# --- 7. scrubgate check --------------------------------------------------------------------
step "scrubgate check"
bin="${SCRUBGATE_BIN:-}"
if [[ -z "$bin" ]]; then
  for candidate in target/release/scrubgate target/debug/scrubgate; do
    if [[ -x "$candidate" ]]; then bin="$candidate"; break; fi
  done
fi
if [[ -n "$bin" ]]; then
  # The ConfigMap's files as the pods load them; the projects directory is the one the
  # pods mount, so it is pointed at the repo's copy. A dummy key stands in for the Secret.
  SCRUBGATE_HASH_KEY=check-deploy-dummy-key \
    SCRUBGATE_PROJECTS_DIR=deploy/kubernetes/base/projects \
    "$bin" check --config deploy/kubernetes/base/scrubgate.toml
else
  echo "no scrubgate binary (set SCRUBGATE_BIN or build one): skipped"
fi

step "done"
echo "check-deploy: all checks passed"
