#!/bin/sh
# Builds the seed corpora of the fuzz targets under fuzz/corpus/<target> from Kyverno's policy
# library (CONFORMANCE_DIR, not part of this repository, so seeds are generated, never
# committed) and from this repository's own examples and Pod Security policies.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
library=${CONFORMANCE_DIR:-$repo/../shared/conformance/kyverno-policies}
corpus=$here/corpus
limit=${SEEDS_PER_TARGET:-400}

mkdir -p "$corpus"
for target in policy_compile pattern_eval jmespath substitution admission_review patch \
    test_suite_yaml scalars cel; do
    mkdir -p "$corpus/$target"
done

n=0
seed() { # seed TARGET FILE: copy FILE as a seed, named by its checksum
    name=$(cksum < "$2" | cut -d' ' -f1)
    cp "$2" "$corpus/$1/$name"
}

policies=$(mktemp)
trap 'rm -f "$policies"' EXIT
{ [ -d "$library" ] && find "$library" -name '*.yaml' -not -name 'kyverno-test.yaml' \
    -not -path '*/.chainsaw-test/*' 2>/dev/null; find "$repo/policies" "$repo/examples" -name '*.yaml'; } |
    sort | head -n "$limit" > "$policies"
while read -r file; do
    seed policy_compile "$file"
    seed pattern_eval "$file"
done < "$policies"
if [ -d "$library" ]; then
    find "$library" -name 'kyverno-test.yaml' | sort | head -n "$limit" |
        while read -r file; do seed test_suite_yaml "$file"; done
fi
for file in "$repo"/examples/admission-reviews/*.json; do
    [ -f "$file" ] && seed admission_review "$file"
done

# Small hand-written seeds: expression NUL document.
printf 'request.object.spec.containers[].image\0{"request":{"object":{"spec":{"containers":[{"image":"nginx"}]}}}}' > "$corpus/jmespath/containers"
printf "to_upper(join(',', keys(@)))\0{\"a\":1,\"b\":2}" > "$corpus/jmespath/functions"
printf "regex_replace_all('(a)', s, '\$1\$1')\0{\"s\":\"banana\"}" > "$corpus/jmespath/regex"
printf '{"message":"{{ request.object.metadata.name }}","{{ a.{{ b }} }}":"x"}\0{"a":{"k":"v"},"b":"k","request":{"object":{"metadata":{"name":"n"}}}}' > "$corpus/substitution/nested"
printf '{"metadata":{"labels":{"+(team)":"a"}},"spec":{"containers":[{"(name)":"*","image":"x"}]}}\0{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"y"}]}}' > "$corpus/patch/anchors"
printf -- '- op: add\n  path: /metadata/labels/a\n  value: b\n\0{"metadata":{"labels":{}}}' > "$corpus/patch/json6902"
printf '1.5Gi\0250m' > "$corpus/scalars/quantity"
printf '1h30m\0>=1.2.0 <2.0.0' > "$corpus/scalars/duration"
printf 'object.spec.containers.all(c, c.image.startsWith("registry.example.com/"))\0{"spec":{"containers":[{"image":"nginx"}]}}' > "$corpus/cel/all"
printf "quantity('1Gi').isGreaterThan(quantity('100Mi')) && '1.2.3'.matches('^[0-9.]+$')" > "$corpus/cel/libraries"
echo "seeds in $corpus"
