package batch

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// ReadBody reads a request body of at most max bytes through
// http.MaxBytesReader, so an oversized body is cut off before it is parsed;
// it also checks the media type. Errors wrap ErrTooLarge or ErrMalformed
// (ErrContentType for a wrong media type).
func ReadBody(w http.ResponseWriter, r *http.Request, max int) ([]byte, error) {
	if err := CheckMediaType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	if r.ContentLength > int64(max) {
		return nil, fail(ErrTooLarge, nil, "body of %d bytes, at most %d", r.ContentLength, max)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(max)))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, fail(ErrTooLarge, nil, "body over %d bytes", max)
		}
		return nil, fail(ErrMalformed, err, "read body")
	}
	return b, nil
}

// ReadResponse reads a response body of at most max bytes, for the agent
// reading the cloud's answers.
func ReadResponse(r io.Reader, max int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("batch: read response: %w", err)
	}
	if len(b) > max {
		return nil, fail(ErrTooLarge, nil, "response over %d bytes", max)
	}
	return b, nil
}

// CheckMediaType accepts ContentType (parameters compared as parsed, so
// quoting and case do not matter).
func CheckMediaType(v string) error {
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || mt != "application/cose" || params["cose-type"] != "cose-sign1" {
		return fail(ErrContentType, err, "media type %q, want %s", v, ContentType)
	}
	return nil
}
