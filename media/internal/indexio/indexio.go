// Package indexio holds what media/mkv's and media/mp4's Indexers share:
// the checkpoint's framing (a magic string, then the Indexer's fixed-size
// state in big-endian binary) and reading an index of fixed-size records.
package indexio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

// Errors of UnmarshalCheckpoint; the container packages wrap them in their
// ErrCorrupt.
var (
	ErrNotCheckpoint = errors.New("not a checkpoint")
	ErrWrongSize     = errors.New("checkpoint of the wrong size")
)

// MarshalCheckpoint returns magic followed by state, a pointer to a struct
// of fixed-size fields, in big-endian binary.
func MarshalCheckpoint(magic string, state any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(magic)
	if err := binary.Write(&b, binary.BigEndian, state); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// UnmarshalCheckpoint reads into state a checkpoint MarshalCheckpoint wrote
// with magic: it fails with ErrNotCheckpoint when checkpoint does not start
// with magic, and with ErrWrongSize unless the rest is exactly state's size.
func UnmarshalCheckpoint(magic string, checkpoint []byte, state any) error {
	if !bytes.HasPrefix(checkpoint, []byte(magic)) {
		return ErrNotCheckpoint
	}
	r := bytes.NewReader(checkpoint[len(magic):])
	if err := binary.Read(r, binary.BigEndian, state); err != nil || r.Len() != 0 {
		return ErrWrongSize
	}
	return nil
}

// ReadRecords calls fn with each size-byte record of index, in order,
// reading index from its start until io.EOF, perRead records at a time. A
// partial last record (a write cut by a crash) is ignored. fn's error is
// returned as it is; an error reading index is returned wrapped in
// ReadError.
func ReadRecords(index io.ReaderAt, size, perRead int, fn func([]byte) error) error {
	buf := make([]byte, size*perRead)
	for off := int64(0); ; {
		n, err := index.ReadAt(buf, off)
		n -= n % size
		for i := 0; i < n; i += size {
			if err := fn(buf[i : i+size]); err != nil {
				return err
			}
		}
		off += int64(n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return &ReadError{Err: err}
		}
	}
}

// ReadError is an error reading an index.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }
