package uplink

import "time"

// State is what the uplink reports to the agent (status page, metrics).
type State struct {
	// Online is true while the last exchange with the cloud succeeded.
	Online bool `json:"online"`
	// Backlog is the number of ops the cloud has not acknowledged yet;
	// Oldest the wall time of the oldest of them (zero when none).
	Backlog int64     `json:"backlog"`
	Oldest  time.Time `json:"oldest,omitzero"`
	// AckedEpoch and AckedSeq are the acknowledgement watermark.
	AckedEpoch uint32 `json:"acked_epoch"`
	AckedSeq   uint64 `json:"acked_seq"`
	// LastSuccess is when the cloud last acknowledged a batch.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError and LastErrorAt describe the last failure; they stay
	// after a later success, which LastSuccess then shows.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// NextAttempt is when the uplink retries after a failure.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Sent counts batches acknowledged since start; Applied, Duplicates
	// and Rejected count their ops by outcome (every op of a replayed
	// batch, which the cloud had applied before, as a duplicate); Gaps
	// counts 409 answers.
	Sent       int64 `json:"sent"`
	Applied    int64 `json:"applied"`
	Duplicates int64 `json:"duplicates"`
	Rejected   int64 `json:"rejected"`
	Gaps       int64 `json:"gaps"`
	// RulesVersion is the cloud's current rules version, from the last ack.
	RulesVersion uint32 `json:"rules_version,omitempty"`
}

// Age returns how long the oldest unacknowledged op has waited at now.
func (s State) Age(now time.Time) time.Duration {
	if s.Oldest.IsZero() {
		return 0
	}
	return now.Sub(s.Oldest)
}
