#!/bin/bash
# Serve this bundle's model: the model server answers on PORT (GET /health, /v1/models).
# Usage: start_server.sh [PORT]
PORT="${1:-8000}"
DIR="$(cd "$(dirname "$0")" && pwd)"
exec python3 "$DIR/server.py" --model "$DIR/weights" --port "$PORT"
