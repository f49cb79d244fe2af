package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/tillpoint/tillpoint/agent"
)

// Problem is an RFC 9457 problem details object. Detail is for the cashier.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Code     string `json:"code"`
	Instance string `json:"instance,omitempty"`
}

// ProblemTypeBase prefixes a problem's code to make its type URI.
const ProblemTypeBase = "urn:tillpoint:problem:"

func statusOf(c agent.Code) (int, string) {
	switch c {
	case agent.CodeInvalid:
		return http.StatusBadRequest, "Invalid request"
	case agent.CodeNoCard:
		return http.StatusUnprocessableEntity, "No card"
	case agent.CodeUnknownCard:
		return http.StatusUnprocessableEntity, "Card not known on this till"
	case agent.CodeInsufficientPoints:
		return http.StatusUnprocessableEntity, "Not enough points"
	case agent.CodeOfflineCapReached:
		return http.StatusUnprocessableEntity, "Offline limit reached"
	case agent.CodeSnapshotTooOld:
		return http.StatusUnprocessableEntity, "Balance too old to redeem offline"
	case agent.CodeNotFound:
		return http.StatusNotFound, "Not found"
	case agent.CodeAlreadyReversed:
		return http.StatusConflict, "Already voided"
	case agent.CodeConflict:
		return http.StatusConflict, "Conflict"
	case agent.CodeKeyReused:
		return http.StatusUnprocessableEntity, "Idempotency-Key reused"
	case agent.CodeNoRules:
		return http.StatusServiceUnavailable, "No rules yet"
	case agent.CodeUnavailable:
		return http.StatusServiceUnavailable, "Till cannot record"
	}
	return http.StatusInternalServerError, "Internal error"
}

func writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	code := agent.ErrorCode(err)
	status, title := statusOf(code)
	p := Problem{Type: ProblemTypeBase + string(code), Title: title, Status: status,
		Detail: agent.ErrorMessage(err), Code: string(code), Instance: r.Pattern}
	if status == http.StatusServiceUnavailable || code == agent.CodeConflict {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(p)
}

func invalid(format string, args ...any) error {
	return agent.Errorf(agent.CodeInvalid, format, args...)
}

func trimLoyalty(err error) string { return strings.TrimPrefix(err.Error(), "loyalty: ") }
