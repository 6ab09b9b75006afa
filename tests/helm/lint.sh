#!/bin/sh
# `make helm-lint`: helm lint, then helm template for the default values and each value set of
# tests/helm/values; every rendered document is checked against the Kubernetes schemas and
# bylaw's CRDs (crates/cli/examples/check_manifests.rs), the Pod templates against bylaw's own
# restricted Pod Security policies, and bad values must be refused. Run from the repository root.
set -eu

HELM=${HELM:-helm}
CARGO=${CARGO:-cargo}
TARGET_DIR=${TARGET_DIR:-target}
CHART=helm/bylaw
command -v "$HELM" >/dev/null 2>&1 || {
  echo "helm-lint needs helm (HELM=/path/to/helm); .ci/run installs it from npm" >&2
  exit 1
}

"$CARGO" build -q -p bylaw-cli --bin bylaw --example check_manifests
BYLAW=$TARGET_DIR/debug/bylaw
CHECK=$TARGET_DIR/debug/examples/check_manifests

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# The chart's copy of the policies is generated; it must match policies/.
if diff -r policies/pod-security/baseline "$CHART/policies/pod-security/baseline" -x tests >/dev/null &&
  diff -r policies/pod-security/restricted "$CHART/policies/pod-security/restricted" -x tests >/dev/null; then
  pass
else
  fail "helm/bylaw/policies differs from policies/pod-security: run make chart-files"
fi

for values in default tests/helm/values/*.yaml; do
  name=$(basename "$values" .yaml)
  set -- --namespace bylaw-system
  [ "$values" = default ] || set -- "$@" --values "$values"
  if "$HELM" lint --strict "$CHART" "$@" >"$work/lint.log" 2>&1; then pass; else
    cat "$work/lint.log" >&2
    fail "helm lint ($name)"
  fi
  out="$work/$name.yaml"
  if "$HELM" template bylaw "$CHART" --include-crds "$@" >"$out" 2>"$work/template.log"; then pass; else
    cat "$work/template.log" >&2
    fail "helm template ($name)"
    continue
  fi
  if "$CHECK" "$out"; then pass; else fail "rendered manifests ($name) do not match their schemas"; fi

  # The chart's own Pods meet the restricted Pod Security Standard.
  "$BYLAW" apply policies/pod-security/baseline/*.yaml policies/pod-security/restricted/*.yaml \
    -r "$out" -o json >"$work/pss.json"
  verdicts=$("$BYLAW" jp query -u -i "$work/pss.json" \
    "join(', ', [?status == 'fail' || status == 'error'].join(' ', [resource, policy]))")
  checked=$("$BYLAW" jp query -u -i "$work/pss.json" \
    "length([?starts_with(resource, 'Deployment/') && status == 'pass'])")
  if [ -z "$verdicts" ] && [ "$checked" -ge 19 ]; then pass; else
    fail "chart Pods break Pod Security ($name, $checked rules passed): $verdicts"
  fi

  # Every kind the chart always renders is there.
  for kind in Deployment Service ServiceAccount ClusterRole ClusterRoleBinding Role RoleBinding CustomResourceDefinition; do
    if grep -q "^kind: $kind\$" "$out"; then pass; else fail "$name renders no $kind"; fi
  done
done

# With HELM_LINT_KUBECONFIG, a real API server validates the rendered objects too (server-side
# dry run, strict field validation; CRDs must be installed). Value sets that need the
# prometheus-operator CRDs or a monitoring namespace are left out.
if [ -n "${HELM_LINT_KUBECONFIG:-}" ]; then
  for name in default single-replica-out-of-cluster; do
    "$HELM" template bylaw "$CHART" --namespace default \
      $( [ "$name" = default ] || echo "--values tests/helm/values/$name.yaml" ) >"$work/server-$name.yaml"
    if KUBECONFIG=$HELM_LINT_KUBECONFIG kubectl apply --server-side --dry-run=server \
      --validate=strict --field-manager=helm-lint -f "$work/server-$name.yaml" >"$work/server.log" 2>&1; then
      pass
    else
      cat "$work/server.log" >&2
      fail "the API server refuses the rendered chart ($name)"
    fi
  done
else
  echo "helm-lint: HELM_LINT_KUBECONFIG not set, no server-side dry run"
fi

# Value sets switch parts on and off.
count() { grep -c "^kind: $1\$" "$work/$2.yaml" || true; }
[ "$(count ClusterPolicy default)" -eq 0 ] && pass || fail "default values install policies"
[ "$(count ClusterPolicy single-replica-out-of-cluster)" -eq 12 ] && pass || fail "baseline is 12 policies"
[ "$(count ClusterPolicy everything)" -eq 19 ] && pass || fail "restricted is baseline and 7 more"
[ "$(count PodDisruptionBudget single-replica-out-of-cluster)" -eq 0 ] && pass || fail "a PDB for one replica blocks node drains"
[ "$(count Job single-replica-out-of-cluster)" -eq 0 ] && pass || fail "cleanupOnUninstall=false still renders the hook"
grep -q 'validationFailureAction: Enforce' "$work/single-replica-out-of-cluster.yaml" && pass || fail "validationFailureAction not applied"
grep -q 'value: "https://bylaw.example.com:9443"' "$work/single-replica-out-of-cluster.yaml" && pass || fail "webhook.url not passed"
for kind in ServiceMonitor PrometheusRule NetworkPolicy ConfigMap PodDisruptionBudget Job; do
  [ "$(count $kind everything)" -eq 1 ] && pass || fail "everything renders no $kind"
done

# Bad values are refused with a message naming the value.
if "$HELM" template bylaw "$CHART" --set podSecurityStandard.level=strict >/dev/null 2>"$work/err.log"; then
  fail "podSecurityStandard.level=strict was accepted"
elif grep -q 'podSecurityStandard.level must be' "$work/err.log"; then pass; else
  cat "$work/err.log" >&2
  fail "podSecurityStandard.level=strict: unclear error"
fi

echo "helm-lint: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
