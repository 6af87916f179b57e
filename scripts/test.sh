#!/usr/bin/env bash
# Install hrdis with its test and perceptual extras (CPU PyTorch from its pinned wheel) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet torch==2.13.0 -e '.[test,perceptual]'
python3 -m pytest -q "$@"
