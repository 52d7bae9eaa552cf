package main

import (
	"context"
	"io"
	"time"
)

// RunRecord runs `recsink record` with chunkSize bytes per PATCH and quick
// polling and progress, for tests.
func RunRecord(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, chunkSize int) error {
	c := newRecordCmd()
	c.ChunkSize = chunkSize
	c.PollEvery = 100 * time.Millisecond
	c.Refresh = 100 * time.Millisecond
	c.LogEvery = time.Second
	c.RetryBudget = time.Minute
	c.WaitBudget = time.Minute
	return c.run(ctx, args, stdin, stdout, stderr)
}

// RunCredentials runs `recsink credentials`.
func RunCredentials(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runCredentials(ctx, args, stdout, stderr)
}

// RunRotate runs `recsink rotate` polling every 100 ms, for tests.
func RunRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newRotateCmd()
	c.PollEvery = 100 * time.Millisecond
	c.LogEvery = 100 * time.Millisecond
	return c.run(ctx, args, stdout, stderr)
}
