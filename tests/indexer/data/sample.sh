#!/usr/bin/env bash
# sample.sh — fixture for the indexer's symbol tests (not run).
set -euo pipefail

log() {
  echo "[$(date +%T)] $*" >&2
}

function build_all {
  log "building"
  make -j2
}

cleanup() {
  rm -rf "$1"
}

build_all
cleanup /tmp/x
