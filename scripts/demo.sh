#!/usr/bin/env bash
# `make demo`: validate and render every example template under images/ with the artifacts served from
# the local copies (--rewrite-uri), check the rendered files with `packer validate`, and show the result.
set -euo pipefail
cd "$(dirname "$0")/.."
isobuild=(node dist/agent/src/cli/main.js)
out=.work/demo
mkdir -p "$out"
for template in images/*/template.json; do
  name=$(basename "$(dirname "$template")")
  echo "=== $name: isobuild validate $template"
  "${isobuild[@]}" validate "$template"
  echo
  echo "=== $name: isobuild render $template --out $out/$name --check"
  # Test VMs have no Azure agent, but the demo renders the real thing, deprovision step included.
  "${isobuild[@]}" render "$template" --out "$out/$name" --check \
    --rewrite-uri "https://isobuildexamples.blob.core.windows.net/artifacts/=$PWD/images/"
  echo
done
echo "The rendered Packer files are under $out/. A real build (isobuild build) arrives with the build issue."
