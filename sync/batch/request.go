package batch

import "strconv"

// Headers of a signed GET: a terminal reads its feeds (GET /v1/snapshots,
// GET /v1/rules) by signing the request with its enrolled key. sync/enroll
// signs, cloud/server checks.
const (
	HeaderTerminal  = "Tillpoint-Terminal"
	HeaderTimestamp = "Tillpoint-Timestamp"
	HeaderSignature = "Tillpoint-Signature"
)

// RequestSigningMessage is what a terminal signs for a GET: the program,
// the method, the path with its query, the terminal and the Unix time.
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
