package main

import (
	"context"
	"io"
)

// RunAdmin runs "recsink admin ARGS" with stdin; for tests, until run
// dispatches "admin" itself.
func RunAdmin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runAdmin(ctx, args, stdin, stdout, stderr)
}
