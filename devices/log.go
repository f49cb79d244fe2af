package devices

// Log attribute keys used by every driver, so logs from all devices read
// the same. Values under KeyValue are always Redact-ed.
const (
	KeyDevice = "device"
	KeyState  = "state"
	KeyCode   = "code"
	KeyReason = "reason"
	KeyValue  = "value_redacted"
	KeyError  = "err"
	KeyJob    = "job"
	KeyWait   = "backoff"
)
