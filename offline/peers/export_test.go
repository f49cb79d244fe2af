package peers

import "github.com/tillpoint/tillpoint/loyalty"

// DecodeAnswer exposes the query answer decoder to the fuzz target.
func DecodeAnswer(b []byte) (loyalty.Points, [][]byte, error) { return decodeAnswer(b) }

// EncodeAnswer exposes the query answer encoder to tests.
func EncodeAnswer(total loyalty.Points, events [][]byte) []byte { return encodeAnswer(total, events) }
