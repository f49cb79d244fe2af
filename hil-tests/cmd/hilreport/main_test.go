package main

import (
	"bytes"
	"strings"
	"testing"
)

func events(lines ...string) *strings.Reader {
	return strings.NewReader(strings.Join(lines, "\n") + "\n")
}

func TestTableAndExitCode(t *testing.T) {
	tests := []struct {
		name     string
		in       *strings.Reader
		wantCode int
		want     []string // substrings of the output
	}{
		{
			name: "pass, gap and defect are told apart and the run is ok",
			in: events(
				`{"Action":"run","Package":"x/e2e","Test":"TestScenario2_Scan"}`,
				`{"Action":"pass","Package":"x/e2e","Test":"TestScenario2_Scan","Elapsed":2.5}`,
				`{"Action":"run","Package":"x/e2e","Test":"TestScenario1_NFC"}`,
				`{"Action":"output","Package":"x/e2e","Test":"TestScenario1_NFC","Output":"    s1.go:9: GAP: no NFC driver\n"}`,
				`{"Action":"skip","Package":"x/e2e","Test":"TestScenario1_NFC","Elapsed":1}`,
				`{"Action":"run","Package":"x/e2e","Test":"TestScenario7_X/sub"}`,
				`{"Action":"output","Package":"x/e2e","Test":"TestScenario7_X/sub","Output":"    s7.go:1: DEFECT: cloud books it wrong\n"}`,
				`{"Action":"skip","Package":"x/e2e","Test":"TestScenario7_X/sub","Elapsed":0}`,
				`{"Action":"pass","Package":"x/e2e","Elapsed":4}`,
			),
			wantCode: 0,
			want:     []string{"TestScenario1_NFC", "GAP", "TestScenario2_Scan", "PASS", "2.5s", "DEFECT", "hil: ok"},
		},
		{
			name: "a failed test fails the run and its output is shown",
			in: events(
				`{"Action":"run","Package":"x/e2e","Test":"TestScenario5_Kill"}`,
				`{"Action":"output","Package":"x/e2e","Test":"TestScenario5_Kill","Output":"    s5.go:3: journal: got 2 ops, want 1\n"}`,
				`{"Action":"fail","Package":"x/e2e","Test":"TestScenario5_Kill","Elapsed":3}`,
				`{"Action":"fail","Package":"x/e2e","Elapsed":4}`,
			),
			wantCode: 1,
			want:     []string{"got 2 ops, want 1", "FAIL", "hil: FAIL"},
		},
		{
			name:     "no package result means the run did not happen",
			in:       events(`# x/e2e`, `build failed`),
			wantCode: 1,
			want:     []string{"build failed", "no package finished", "hil: FAIL"},
		},
		{
			name: "a test that never finished fails the run",
			in: events(
				`{"Action":"run","Package":"x/e2e","Test":"TestScenario4_Outage"}`,
				`{"Action":"pass","Package":"x/e2e","Elapsed":4}`,
			),
			wantCode: 1,
			want:     []string{"UNFINISHED", "never finished"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if got := run(tt.in, &out); got != tt.wantCode {
				t.Errorf("exit code: got %d, want %d\n%s", got, tt.wantCode, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output: want %q in\n%s", w, out.String())
				}
			}
		})
	}
}
