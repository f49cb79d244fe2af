package server

// Log keys, so every line of the server spells them the same way.
const (
	logMethod   = "method"
	logPath     = "path"
	logStatus   = "status"
	logCode     = "code"
	logDuration = "duration"
	logRemote   = "remote"
	logTerminal = "terminal"
	logStore    = "store"
	logEpoch    = "epoch"
	logFirst    = "first_seq"
	logLast     = "last_seq"
	logOps      = "ops"
	logAddr     = "addr"
	logErr      = "err"
)
