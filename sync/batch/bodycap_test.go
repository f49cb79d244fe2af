package batch_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// endlessBody is a request body that never ends on its own: it yields
// zero bytes until limit, then fails, and counts what was read from it.
type endlessBody struct {
	read, limit int
}

func (b *endlessBody) Read(p []byte) (int, error) {
	if b.read >= b.limit {
		return 0, errors.New("endlessBody: the reader read far past the body cap")
	}
	n := min(len(p), b.limit-b.read)
	clear(p[:n])
	b.read += n
	return n, nil
}

func (b *endlessBody) Close() error { return nil }

// TestReadBodyCapsAnUnlengthedBodyBeforeReadingIt defends invariant 6 and
// issue 3's "the body is capped before parsing (http.MaxBytesReader)": a
// body sent without a Content-Length (chunked) is cut off at the cap as it
// is read, so a client cannot make the cloud buffer more than max bytes.
// ParseEnvelope's own length check comes too late for that: by then the
// whole body is in memory.
func TestReadBodyCapsAnUnlengthedBodyBeforeReadingIt(t *testing.T) {
	const max = 4 << 10
	body := &endlessBody{limit: 64 * max}
	r := httptest.NewRequest(http.MethodPost, "/v1/batches", nil)
	r.Body = body
	r.ContentLength = -1 // unknown, as for a chunked body
	r.Header.Set("Content-Type", batch.ContentType)
	w := httptest.NewRecorder()

	got, err := batch.ReadBody(w, r, max)
	if !errors.Is(err, batch.ErrTooLarge) {
		t.Fatalf("ReadBody of an endless body: %d bytes, err %v; want ErrTooLarge", len(got), err)
	}
	// MaxBytesReader reads at most one byte past the cap; without it the
	// whole body is read before anything looks at its length.
	if body.read > 2*max {
		t.Errorf("ReadBody read %d bytes of a body capped at %d: the cap is not applied while reading", body.read, max)
	}
}
