package main

import (
	"flag"
	"io"
)

// ParseServeFlags parses the flags of `recsink serve` as the command does,
// without running anything; for tests.
func ParseServeFlags(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("recsink serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	err := parseFlags(fs, args)
	return c, err
}

// RaiseProcs is what recsink serve does to GOMAXPROCS at its start.
var RaiseProcs = raiseProcs

// TuneGC is what recsink serve does to the GC at its start.
var TuneGC = tuneGC

// MemoryTotal and ParseMemTotal are what TuneGC is given.
var MemoryTotal, ParseMemTotal = memoryTotal, parseMemTotal

// GCPercent and MemoryShare are recsink serve's GOGC and the share of the
// memory it sets as GOMEMLIMIT.
const GCPercent, MemoryShare = gcPercent, memoryShare

// MinProcs is the fewest Ps that recsink serve runs with.
const MinProcs = minProcs
