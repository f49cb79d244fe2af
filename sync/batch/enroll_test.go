package batch_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// count returns n bytes counting up from start, for fixed golden values.
func count(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// The enrollment documents keep the bytes terminals in the field send and
// expect: each value encodes to its golden file in testdata/enroll, and the
// golden file decodes, with no unknown field, back to the value. A renamed
// field or JSON tag, or a lost omitempty, fails here. The golden files were
// written by the cloud's and the terminal's own copies of these types
// before they became one; never regenerate them.
func TestEnrollDocumentsKeepTheirGoldenJSON(t *testing.T) {
	request := batch.EnrollRequest{Code: "ABCD-EFGH-JKLM", PublicKey: count(32, 1), Proof: count(64, 100)}
	full := request
	full.Advertise, full.BoxKey = "10.0.0.7:7946", count(32, 200)
	reply := batch.EnrollResponse{Program: "prog-1", Store: "store-7", Terminal: "till-2", TerminalKeyID: "0123456789abcdef",
		CloudPublicKey: count(32, 50), CloudKeyID: "fedcba9876543210"}
	withRoster := reply
	withRoster.Roster = count(40, 7)
	reenrolled := reply
	reenrolled.Epoch = 3
	for _, tc := range []struct {
		golden string
		value  any
	}{
		{"request.json", &full},
		{"request-minimal.json", &request},
		{"response.json", &withRoster},
		{"response-no-roster.json", &reply},
		{"response-epoch.json", &reenrolled},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "enroll", tc.golden))
			if err != nil {
				t.Fatal(err)
			}
			want = bytes.TrimSuffix(want, []byte("\n"))
			got, err := json.Marshal(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoded\n%s\nwant the golden\n%s", got, want)
			}
			back := reflect.New(reflect.TypeOf(tc.value).Elem())
			dec := json.NewDecoder(bytes.NewReader(want))
			dec.DisallowUnknownFields()
			if err := dec.Decode(back.Interface()); err != nil {
				t.Fatalf("decode the golden: %v", err)
			}
			if !reflect.DeepEqual(back.Interface(), tc.value) {
				t.Errorf("the golden decodes to %+v, want %+v", back.Interface(), tc.value)
			}
		})
	}
}

// The proof message is signed by terminals in the field: its bytes never change.
func TestEnrollProofMessageKeepsItsBytes(t *testing.T) {
	pub := count(32, 1)
	want := append([]byte("tillpoint enroll v1\nABCD-EFGH-JKLM\n"), pub...)
	if got := batch.EnrollProofMessage("ABCD-EFGH-JKLM", pub); !bytes.Equal(got, want) {
		t.Errorf("EnrollProofMessage = %q, want %q", got, want)
	}
}
