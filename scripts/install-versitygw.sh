#!/usr/bin/env bash
# Installs the pinned versitygw (the S3 server the tests talk to) into a cache
# folder that survives between runs on the same machine, and prints its path.
# Skips the ~90 s build when the binary is already there. See ../shared/s3test.
set -euo pipefail
VERSION=v1.8.0
DIR="${RECSINK_TOOLS:-$HOME/.cache/recsink-tools}/versitygw-$VERSION"
if [ ! -x "$DIR/bin/versitygw" ]; then
  mkdir -p "$DIR"
  echo "installing versitygw $VERSION into $DIR (takes about 90 s once)" >&2
  GOBIN="$DIR/bin.tmp" go install "github.com/versity/versitygw/cmd/versitygw@$VERSION" >&2
  rm -rf "$DIR/bin" && mv "$DIR/bin.tmp" "$DIR/bin"
fi
echo "$DIR/bin/versitygw"
