package sqlstore

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/recsink/recsink"
)

// sortCursor is the JSON inside a cursor of a sorted list: the sort it was
// made for, the sort key of the last row of the page (typed, so that each
// store compares it as the column it came from) and that row's seq, which
// breaks ties.
type sortCursor struct {
	Sort string `json:"o"`
	Type string `json:"t"` // "i" int64, "s" string, "t" time (RFC 3339 with nanoseconds)
	Key  string `json:"k"`
	Seq  int64  `json:"s"`
}

// EncodeSortCursor returns the opaque cursor that continues a list sorted
// by sort after the row with sort key key (as the driver scanned it: an
// int64, a string or a time.Time) and seq.
func EncodeSortCursor(sort string, key any, seq int64) (string, error) {
	c := sortCursor{Sort: sort, Seq: seq}
	switch k := key.(type) {
	case int64:
		c.Type, c.Key = "i", strconv.FormatInt(k, 10)
	case string:
		c.Type, c.Key = "s", k
	case []byte:
		c.Type, c.Key = "s", string(k)
	case time.Time:
		c.Type, c.Key = "t", k.UTC().Format(time.RFC3339Nano)
	default:
		return "", fmt.Errorf("sort key of type %T", key)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeSortCursor returns the sort key and seq a cursor of a list sorted by
// sort continues after. A cursor that is malformed, or was made for another
// sort, is an EINVALID error naming "cursor".
func DecodeSortCursor(cursor, sort string) (key any, seq int64, err error) {
	bad := recsink.FieldErrorf("cursor", "cursor is invalid: pass the cursor of the previous page unchanged, with the same sortBy")
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, 0, bad
	}
	var c sortCursor
	if err := json.Unmarshal(b, &c); err != nil || c.Sort != sort || c.Seq < 1 {
		return nil, 0, bad
	}
	switch c.Type {
	case "i":
		n, err := strconv.ParseInt(c.Key, 10, 64)
		if err != nil {
			return nil, 0, bad
		}
		return n, c.Seq, nil
	case "s":
		return c.Key, c.Seq, nil
	case "t":
		t, err := time.Parse(time.RFC3339Nano, c.Key)
		if err != nil {
			return nil, 0, bad
		}
		return t, c.Seq, nil
	}
	return nil, 0, bad
}
