package main

import (
	"context"
	"io"
)

// Run runs a command line as the binary would; for tests.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return run(ctx, args, stdout, stderr)
}
