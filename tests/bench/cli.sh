#!/bin/sh
# Times `bylaw apply` of the Pod Security policies on 100, 1,000 and 10,000 generated Pods
# (one YAML stream each) and prints CPU seconds and peak RSS per size, so growth can be read
# off directly: linear growth means ten times the Pods costs about ten times the CPU.
# Usage: BYLAW=target/release/bylaw POLICY_DIR=policies/pod-security sh tests/bench/cli.sh
set -eu
: "${BYLAW:?path to a release bylaw binary}"
: "${POLICY_DIR:?directory of policies}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%8s  %10s  %10s  %12s\n' pods "cpu (s)" "wall (s)" "peak RSS"
for n in 100 1000 10000; do
  i=0
  while [ "$i" -lt "$n" ]; do
    privileged=false
    [ $((i % 7)) -eq 0 ] && privileged=true
    printf -- '---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-%d\n  namespace: ns-%d\nspec:\n  containers:\n  - name: c\n    image: nginx:1.%d\n    securityContext: {privileged: %s}\n' \
      "$i" $((i % 100)) $((i % 20)) "$privileged"
    i=$((i + 1))
  done > "$work/pods.yaml"
  /usr/bin/time -f '%U %S %e %M' -o "$work/time" \
    "$BYLAW" apply "$POLICY_DIR" --resource "$work/pods.yaml" > /dev/null 2> "$work/stderr" || true
  # GNU time puts "Command exited with non-zero status N" first when the policies find
  # violations (exit 1): the figures are on the last line.
  tail -n 1 "$work/time" > "$work/figures"
  read -r user sys wall rss < "$work/figures"
  printf '%8d  %10.2f  %10.2f  %9d KiB\n' "$n" "$(awk "BEGIN{print $user + $sys}")" "$wall" "$rss"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
