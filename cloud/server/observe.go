package server

import (
	"time"

	"github.com/tillpoint/tillpoint/cloud"
)

// Observer hears what the server does, for metrics: the cloud command feeds
// a Prometheus registry from it. Its methods run on the request's
// goroutine, so they must be quick, must not block, and must be safe for
// concurrent use.
type Observer interface {
	// Request reports a finished request: the route it matched (its
	// pattern, such as "POST /v1/batches"; "/" when none did), the HTTP
	// status, its outcome (the problem code of a refusal; for a batch
	// acknowledged, the ack's status: applied, duplicate or gap; else
	// "ok") and how long it took.
	Request(route string, status int, outcome string, took time.Duration)
	// Ops reports the results of the ops of a batch the ledger applied;
	// a batch acknowledged again as a duplicate reports none.
	Ops(results []cloud.OpResult)
}

// ApplyInFlight returns how many batches the ledger is applying now. At
// MaxConcurrentApply, further batches wait, and those that wait longer
// than ApplyQueueWait are answered 503.
func (s *Server) ApplyInFlight() int { return len(s.applySlots) }
