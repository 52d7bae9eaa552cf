package media_test

import (
	"bytes"
	"fmt"
	"os"

	"github.com/recsink/recsink/media"
)

// The integration in brief: index the stream as it arrives, hold back the
// first part, and at the stop replace it and append the tail.
func Example() {
	stream, err := os.ReadFile("testdata/live.webm") // what a recorder sent
	if err != nil {
		fmt.Println(err)
		return
	}
	kind := media.Sniff(stream[:media.SniffLen])
	var index bytes.Buffer // in recsink, an append-only file in the spool
	x, err := media.NewIndexer(kind, &index)
	if err != nil {
		fmt.Println(err)
		return
	}
	for p := 0; p < len(stream); p += 4096 { // as the bytes arrive
		x.Write(stream[p:min(p+4096, len(stream))])
	}
	if err := x.Close(); err != nil {
		fmt.Println("store as it is:", err)
		return
	}
	firstLen := max(x.HeaderEnd(), 2048) // the part held back: 5 MiB in recsink
	first, tail, err := media.Finalize(kind, stream[:firstLen], bytes.NewReader(index.Bytes()), int64(len(stream)))
	if err != nil {
		fmt.Println("store as it is:", err)
		return
	}
	file := append(append(first, stream[firstLen:]...), tail...)
	fmt.Println(kind.ContentType(), kind.Ext(), len(file) == len(first)+len(stream)-int(firstLen)+len(tail))
	// Output: video/webm webm true
}
