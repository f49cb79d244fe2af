package enroll

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// SignRequest adds the terminal's signature headers to req, so the cloud
// serves it the feeds of its store (GET /v1/snapshots, GET /v1/rules).
func (st *State) SignRequest(req *http.Request, now time.Time) {
	unix := now.Unix()
	msg := batch.RequestSigningMessage(st.Program, req.Method, req.URL.RequestURI(), st.Terminal, unix)
	req.Header.Set(batch.HeaderTerminal, st.Terminal)
	req.Header.Set(batch.HeaderTimestamp, strconv.FormatInt(unix, 10))
	req.Header.Set(batch.HeaderSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(st.Key, msg)))
}
