package enroll

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"
)

// Headers of a signed request; cloud/server checks them.
const (
	HeaderTerminal  = "Tillpoint-Terminal"
	HeaderTimestamp = "Tillpoint-Timestamp"
	HeaderSignature = "Tillpoint-Signature"
)

// RequestSigningMessage is what a terminal signs for a GET to the cloud;
// it matches cloud/server.RequestSigningMessage.
func RequestSigningMessage(program, method, pathQuery, terminal string, unix int64) []byte {
	b := make([]byte, 0, 64+len(program)+len(pathQuery)+len(terminal))
	b = append(b, "tillpoint request v1\n"...)
	b = append(b, program...)
	b = append(b, '\n')
	b = append(b, method...)
	b = append(b, '\n')
	b = append(b, pathQuery...)
	b = append(b, '\n')
	b = append(b, terminal...)
	b = append(b, '\n')
	return strconv.AppendInt(b, unix, 10)
}

// SignRequest adds the terminal's signature headers to req, so the cloud
// serves it the feeds of its store (GET /v1/snapshots, GET /v1/rules).
func (st *State) SignRequest(req *http.Request, now time.Time) {
	unix := now.Unix()
	msg := RequestSigningMessage(st.Program, req.Method, req.URL.RequestURI(), st.Terminal, unix)
	req.Header.Set(HeaderTerminal, st.Terminal)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(unix, 10))
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(st.Key, msg)))
}
