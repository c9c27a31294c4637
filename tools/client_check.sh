#!/usr/bin/env bash
# phenoseg's outputs read by geopandas, scanpy and spatialdata (benchmarks/client_check.py), in their own
# environment (.clients-venv: spatialdata and scanpy are heavy and not phenoseg dependencies), with torch from
# the same pin. An environment that cannot be installed is reported and skipped; a failed check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV=.clients-venv
if [ ! -x "$ENV/bin/python" ] || ! "$ENV/bin/python" -c "import geopandas, scanpy, spatialdata" 2>/dev/null; then
  if ! (python3 -m venv "$ENV" && "$ENV/bin/pip" install -q torch==2.13.0 \
        && "$ENV/bin/pip" install -q -e ".[tables]" geopandas scanpy spatialdata); then
    echo "warning: could not install the client packages; client check skipped"
    exit 0
  fi
fi
PYTHONWARNINGS=ignore "$ENV/bin/python" benchmarks/client_check.py 2> >(grep -v "return next(self.gen)" >&2)
