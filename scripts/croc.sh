#!/bin/sh
# Installs croc v10.7.0 (the relay baseline of `cloakroom bench relay`,
# issue 15) from the Go module proxy into a cache directory, outside this
# module (croc is not a dependency of cloakroom), and prints its path:
#   ./cloakroom bench relay --croc "$(scripts/croc.sh)"
set -eu
version=v10.7.0
dir=${CROC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloakroom/croc-$version}
if [ ! -x "$dir/croc" ]; then
	mkdir -p "$dir"
	# Outside the module: go install pkg@version ignores go.mod anyway, but
	# keep GOFLAGS=-mod=... of the caller from interfering.
	(cd "$dir" && GOFLAGS= GOBIN="$dir" go install "github.com/schollz/croc/v10@$version") >&2
fi
echo "$dir/croc"
