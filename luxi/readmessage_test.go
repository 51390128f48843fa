package luxi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"pgregory.net/rapid"
)

// chunkReader returns its data in the chunk sizes it is given, so that a
// message arrives split anywhere.
type chunkReader struct {
	data  []byte
	sizes []int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.sizes) > 0 {
		n, r.sizes = min(n, r.sizes[0]), r.sizes[1:]
	}
	n = copy(p, r.data[:min(n, len(r.data))])
	r.data = r.data[n:]
	return n, nil
}

// TestReadMessageProperty: messages of any size, split into reads of any
// size and read into a reused buffer, come out whole and in order, in a
// buffer never larger than the limit; one over the limit is refused.
func TestReadMessageProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		limit := rapid.IntRange(1, 1<<16).Draw(t, "limit")
		msgs := rapid.SliceOfN(rapid.IntRange(0, 1<<17), 1, 6).Draw(t, "sizes")
		var stream []byte
		var want [][]byte
		for i, size := range msgs {
			m := bytes.Repeat([]byte{byte('a' + i)}, size)
			want = append(want, m)
			stream = append(append(stream, m...), eom)
		}
		sizes := rapid.SliceOf(rapid.IntRange(1, 1<<15)).Draw(t, "reads")
		br := bufio.NewReaderSize(&chunkReader{data: stream, sizes: sizes}, rapid.IntRange(16, 1<<12).Draw(t, "bufsize"))
		var buf []byte
		for i, w := range want {
			got, err := readMessage(br, buf, limit, nil)
			if len(w) > limit {
				if !errors.Is(err, errTooLarge) {
					t.Fatalf("message %d of %d bytes over the limit %d: %v", i, len(w), limit, err)
				}
				return // the connection is closed after that
			}
			if err != nil || !bytes.Equal(got, w) {
				t.Fatalf("message %d: %d bytes, %v; want %d bytes", i, len(got), err, len(w))
			}
			if cap(got) > limit {
				t.Fatalf("message %d of %d bytes took a buffer of %d, over the limit %d", i, len(got), cap(got), limit)
			}
			buf = got
		}
		if _, err := readMessage(br, buf, limit, nil); err != io.EOF {
			t.Fatalf("after the last message: %v, want EOF", err)
		}
	})
}
