// Command recsink runs the recsink server and its command-line tools.
//
//	recsink serve [flags]                 run the server
//	recsink org create NAME [--data DIR | --db DSN]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `recsink delivers meeting recordings into each customer's own S3 bucket.

Usage:
  recsink serve [flags]                              run the server
  recsink org create NAME [--data DIR | --db DSN]    create an organization; prints its API key last
  recsink admin create --org NAME --email EMAIL --password-stdin [--data DIR | --db DSN]
                                                     create a user of the admin page (/admin/)
  recsink record --meeting ID [FILE]                 stream FILE (or standard input) into a new recording; prints bucket, object key, size, SHA-256
  recsink credentials                                list key generations, the recordings holding each, when each is safe to delete
  recsink rotate --wait [--scope S] [--key-id K]     wait until a replaced key is held by no recording
  recsink spool list|purge [--failed] [ID...] [--data DIR | --db DSN]
                                                     what this node's spool holds; purge the data of failed or finished recordings

Client commands take --url (RECSINK_URL, default http://127.0.0.1:8080) and
--api-key (RECSINK_API_KEY).

Run "recsink serve -h" for the server's flags. Every flag can also be set
with an environment variable RECSINK_<NAME>, such as RECSINK_ADDR.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "recsink:", err)
		}
		os.Exit(2)
	}
}

// run dispatches a command line; stdout gets results, stderr the logs.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "org":
		if len(args) < 2 || args[1] != "create" {
			return fmt.Errorf("usage: recsink org create NAME [--data DIR | --db DSN]")
		}
		return runOrgCreate(ctx, args[2:], stdout, stderr)
	case "admin":
		return runAdmin(ctx, args[1:], os.Stdin, stdout, stderr)
	case "record":
		return runRecord(ctx, args[1:], os.Stdin, stdout, stderr)
	case "credentials":
		return runCredentials(ctx, args[1:], stdout, stderr)
	case "rotate":
		return runRotate(ctx, args[1:], stdout, stderr)
	case "spool":
		return runSpool(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n\n%s", args[0], usage)
}

// runServe runs the server until ctx is canceled (SIGINT or SIGTERM).
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	m := NewMain()
	m.Stderr = stderr
	fs := flag.NewFlagSet("recsink serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m.Config.RegisterFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	<-ctx.Done()
	m.Logger.Info("shutting down")
	return m.Close()
}

// runOrgCreate creates an organization directly in the store.
func runOrgCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var name string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("recsink org create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Data, "data", cfg.Data, "data folder (holds the SQLite file)")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "database DSN (default sqlite:<data>/recsink.db)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	if name == "" {
		return fmt.Errorf("usage: recsink org create NAME [--data DIR | --db DSN]")
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	svc := newOrgService(store)
	org, key, err := svc.CreateOrganization(ctx, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "organization %s created (id %s)\n", org.Name, org.ID)
	fmt.Fprintln(stdout, "its API key, shown only this once:")
	fmt.Fprintln(stdout, key)
	return nil
}
