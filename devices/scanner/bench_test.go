package scanner_test

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/devices/scanner"
)

// BenchmarkParse parses a GS1-128 GSRN scan (AIM, element string, check
// digit); the baseline is strconv.ParseUint of the same 18 digits.
func BenchmarkParse(b *testing.B) {
	data := []byte("]C18018123456789012345675")
	digits := string(data[7:])
	b.ReportAllocs()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := strconv.ParseUint(digits, 10, 64); err != nil {
			b.Fatal(err)
		}
	}
	base := time.Since(start)
	b.ResetTimer()
	start = time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := scanner.Parse(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start))/float64(base), "x_parseuint")
}

// BenchmarkKeyDecode decodes a 16-character keyboard-wedge scan from raw
// input_event records; the baseline is copying the same records.
func BenchmarkKeyDecode(b *testing.B) {
	raw := typer(b, scanner.KeymapUS())("]E04006381333931", time.Millisecond)
	sink := make([]byte, len(raw))
	start := time.Now()
	for i := 0; i < b.N; i++ {
		copy(sink, raw)
	}
	base := time.Since(start)
	b.ResetTimer()
	start = time.Now()
	for i := 0; i < b.N; i++ {
		n := 0
		_ = scanner.ReadKeys(bytes.NewReader(raw), &scanner.KeyDecoder{}, func(scanner.Line) { n++ })
		if n != 1 {
			b.Fatalf("decoded %d lines, want 1", n)
		}
	}
	b.ReportMetric(float64(time.Since(start))/float64(base), "x_copy")
}
