#!/bin/bash
# Start this bundle's agent against the model server listening on PORT.
# Usage: start_agent.sh [PORT] [--task TEXT]
PORT="${1:-8000}"
DIR="$(cd "$(dirname "$0")" && pwd)"
shift
exec python3 "$DIR/agent.py" --port "$PORT" "$@"
