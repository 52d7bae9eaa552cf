package main

import (
	"context"
	"io"
	nethttp "net/http"
	"time"
)

// RunRecordClient runs `recsink record` as RunRecord does, with hc sending
// every request (so that a test can count the answers) and the given
// budgets for a run of failures and for the wait for the object.
func RunRecordClient(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, chunkSize int, hc *nethttp.Client, retryBudget, waitBudget time.Duration) error {
	c := newRecordCmd()
	c.ChunkSize = chunkSize
	c.PollEvery = 100 * time.Millisecond
	c.Refresh = 100 * time.Millisecond
	c.LogEvery = time.Second
	c.RetryBudget = retryBudget
	c.WaitBudget = waitBudget
	c.HTTPClient = hc
	return c.run(ctx, args, stdin, stdout, stderr)
}
