#!/bin/sh
# Builds the Bicep templates when a Bicep compiler is installed (az bicep or bicep); otherwise
# says so and succeeds, since our machines have none (test/unit/bicep-templates.test.ts checks the text).
set -e
cd "$(dirname "$0")"
if command -v bicep >/dev/null 2>&1; then
  bicep build main.bicep --stdout >/dev/null && bicep build-params main.bicepparam --stdout >/dev/null
  echo 'bicep: main.bicep and main.bicepparam build'
elif command -v az >/dev/null 2>&1 && az bicep version >/dev/null 2>&1; then
  az bicep build --file main.bicep --stdout >/dev/null && az bicep build-params --file main.bicepparam --stdout >/dev/null
  echo 'az bicep: main.bicep and main.bicepparam build'
else
  echo 'No Bicep compiler is installed (az bicep or bicep); the templates were not built.'
fi
