package agent

// Log keys used by the agent's components.
const (
	keyOp       = "op"
	keyKind     = "kind"
	keyCard     = "card" // always a redacted loyalty.CardToken or a card hash prefix
	keyPoints   = "points"
	keyErr      = "err"
	keySource   = "source"
	keyDuration = "duration"
	keyKey      = "idempotency_key"
)
