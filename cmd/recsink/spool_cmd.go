package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/humanize"
	"github.com/recsink/recsink/spool"
)

const spoolUsage = `usage: recsink spool list [--data DIR | --db DSN]
       recsink spool purge [--failed] [ID...] [--data DIR | --db DSN]`

// runSpool runs "recsink spool ...": what this node's spool holds, and the
// purge of the data of failed or finished recordings. It opens the data
// folder and the database directly, like "recsink org create".
func runSpool(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(spoolUsage)
	}
	switch args[0] {
	case "list":
		return runSpoolList(ctx, args[1:], stdout, stderr)
	case "purge":
		return runSpoolPurge(ctx, args[1:], stdout, stderr)
	}
	return errors.New(spoolUsage)
}

// spoolCmd is what both spool commands open: the data folder's spool and the
// database that says what each recording is.
type spoolCmd struct {
	cfg   Config
	spool *spool.Spool
	store recsink.Store
}

// parseSpoolFlags parses the flags and positional arguments, in any order,
// of a spool command.
func parseSpoolFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (Config, []string, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Data, "data", cfg.Data, "the server's data folder (holds the spool, and the SQLite file)")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "database DSN (default sqlite:<data>/recsink.db)")
	if extra != nil {
		extra(fs)
	}
	var rest []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return cfg, nil, err
		}
		if fs.NArg() == 0 {
			return cfg, rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// open opens the spool of cfg's data folder, which must exist, and the
// database.
func (c *spoolCmd) open(ctx context.Context) error {
	dir := filepath.Join(c.cfg.Data, "spool")
	if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return fmt.Errorf("no spool in %s: is --data the server's data folder?", c.cfg.Data)
	} else if err != nil {
		return err
	}
	var err error
	// The command writes no media: it needs no group commit, whose handle
	// on the folder would outlive it.
	if c.spool, err = spool.OpenConfig(spool.Config{Dir: dir, SyncEachFile: true}); err != nil {
		return err
	}
	c.store, err = openStore(ctx, c.cfg)
	return err
}

// state returns what the database says of recording id: its state, or why
// there is none.
func (c *spoolCmd) state(ctx context.Context, id string) (*recsink.Recording, string, error) {
	rec, err := c.store.FindRecordingByID(ctx, id)
	switch {
	case recsink.ErrorCode(err) == recsink.ENOTFOUND:
		return nil, "not in the database", nil
	case err != nil:
		return nil, "", fmt.Errorf("recording %s: %w", id, err)
	}
	return rec, rec.State, nil
}

// runSpoolList prints a table of the recordings in the spool.
func runSpoolList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseSpoolFlags("recsink spool list", args, stderr, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return errors.New(spoolUsage)
	}
	c := &spoolCmd{cfg: cfg}
	if err := c.open(ctx); err != nil {
		return err
	}
	defer c.store.Close()
	entries, err := c.spool.Entries()
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "RECORDING\tBYTES\tSTATE\tSPOOL\tLAST CHANGE")
	var total int64
	for _, e := range entries {
		_, state, err := c.state(ctx, e.ID)
		if err != nil {
			return err
		}
		spooled := "unfinished"
		if e.Finished {
			spooled = "finished"
		}
		total += e.Bytes
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.ID, humanize.Bytes(e.Bytes), state, spooled, e.ModTime.UTC().Format(time.RFC3339))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s, %s spooled\n", recordings(len(entries)), humanize.Bytes(total))
	return nil
}

// runSpoolPurge deletes the spool data of the recordings named, and with
// --failed of every failed recording. It refuses, purging nothing, when a
// recording named is still running: its spool holds bytes that are not in
// the bucket yet.
func runSpoolPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var failed bool
	cfg, ids, err := parseSpoolFlags("recsink spool purge", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&failed, "failed", false, "purge the data of every failed recording")
	})
	if err != nil {
		return err
	}
	if !failed && len(ids) == 0 {
		return errors.New(spoolUsage)
	}
	c := &spoolCmd{cfg: cfg}
	if err := c.open(ctx); err != nil {
		return err
	}
	defer c.store.Close()
	entries, err := c.spool.Entries()
	if err != nil {
		return err
	}
	type target struct {
		spool.Entry
		state string
	}
	var targets []target
	var refused []string
	for _, e := range entries {
		named := slices.Contains(ids, e.ID)
		if !named && !failed {
			continue
		}
		rec, state, err := c.state(ctx, e.ID)
		if err != nil {
			return err
		}
		switch {
		case rec != nil && !rec.Finished():
			if named {
				refused = append(refused, fmt.Sprintf("%s is %s", e.ID, state))
			}
		case named || state == recsink.RecordingFailed:
			// Finished (failed, uploaded, deleted) or unknown to the
			// database: nothing will read this data again.
			targets = append(targets, target{e, state})
		}
	}
	for _, id := range ids {
		if !slices.ContainsFunc(entries, func(e spool.Entry) bool { return e.ID == id }) {
			refused = append(refused, fmt.Sprintf("%s has no data in the spool", id))
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("nothing purged: %s; only the data of failed or finished recordings can be purged", strings.Join(refused, ", "))
	}
	var freed int64
	for _, t := range targets {
		if err := c.spool.Remove(t.ID); err != nil {
			return err
		}
		freed += t.Bytes
		fmt.Fprintf(stdout, "purged %s (%s, %s)\n", t.ID, t.state, humanize.Bytes(t.Bytes))
	}
	fmt.Fprintf(stdout, "%s purged, %s freed\n", recordings(len(targets)), humanize.Bytes(freed))
	return nil
}

// recordings returns "1 recording", "2 recordings".
func recordings(n int) string {
	if n == 1 {
		return "1 recording"
	}
	return fmt.Sprintf("%d recordings", n)
}
