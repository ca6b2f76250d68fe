#!/usr/bin/env bash
# govulncheck for every module against a local copy of the Go vulnerability
# database, built from the golang.org/x/vulndb module (the network here
# reaches only the module proxy). Fails on any finding except the Echo v4
# advisories allowed, with reasons, in devstack/cmd/vulngate.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
VULNDB_VERSION="${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}"
GOVULNCHECK_VERSION=v1.9.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/spacesync/vulndb-$VULNDB_VERSION"

if [ ! -f "$cache/index/db.json" ]; then
  echo "vulncheck: building the vulnerability database $VULNDB_VERSION (once)"
  go mod download golang.org/x/vulndb@"$VULNDB_VERSION"
  src="$(go env GOMODCACHE)/golang.org/x/vulndb@$VULNDB_VERSION"
  tmp="$(mktemp -d)"
  go run golang.org/x/vulndb/cmd/indexdb@"$VULNDB_VERSION" -vulns "$src/data/osv" -out "$tmp/db"
  mkdir -p "$(dirname "$cache")"
  rm -rf "$cache"
  mv "$tmp/db" "$cache"
  rm -rf "$tmp"
fi

gobin="$(go env GOPATH)/bin"
if ! "$gobin/govulncheck" -version 2>/dev/null | grep -q "$GOVULNCHECK_VERSION"; then
  go install golang.org/x/vuln/cmd/govulncheck@"$GOVULNCHECK_VERSION"
fi
go build -o "$gobin/spacesync-vulngate" ./devstack/cmd/vulngate

status=0
for m in shared cloud-app dc-app devstack; do
  echo "vulncheck: $m"
  if ! (cd "$m" && "$gobin/govulncheck" -db "file://$cache" -format json ./... | "$gobin/spacesync-vulngate"); then
    status=1
  fi
done
exit $status
