#!/usr/bin/env bash
# Spark resource discovery script: the GPUs this worker may hand out, as Spark expects them.
# Used by spark.worker.resource.gpu.discoveryScript in docker-compose.yaml.
set -euo pipefail
ids=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | paste -sd, - | sed 's/,/","/g')
echo "{\"name\": \"gpu\", \"addresses\": [${ids:+\"$ids\"}]}"
