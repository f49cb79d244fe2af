// Package uplink is the store terminal's sender: it ships the journal to the
// cloud ledger as signed batches and brings back acknowledgements and
// member snapshots.
//
// # One round
//
//  1. Resend the oldest sealed batch in the journal's outbox, byte for byte,
//     if there is one (a batch sealed before a crash or a failed send); a
//     new epoch's first batch goes after a probe (see below).
//  2. Otherwise read the ops that follow the resume point (the end of the
//     last batch acknowledged, or where the cloud said to re-seal from;
//     after a start, the point a resend of the journal reached, or else
//     the journal's acknowledgement watermark) and cut a
//     batch: one epoch, at most MaxOps ops (half the size a 413 refused,
//     for ten minutes after it) and MaxBytes of canonical op encoding,
//     sent early only when full or when its oldest op has waited MaxAge.
//     Seal it (sync/batch) and store the exact bytes in the outbox before
//     the first send.
//  3. POST it to /v1/batches with a timeout. A signed ack (verified with
//     the cloud's key before anything is trusted) moves the journal's
//     acknowledgement watermark (which drops the acked sealed batches),
//     records the hash of the last batch applied and refreshes the member
//     snapshots, in one journal transaction. A signed 409 gap ack says
//     where the cloud stands: the uplink drops its sealed batches past that
//     point and re-seals from the cloud's watermark, chained to the hash
//     the cloud holds. 429 and 503 are retried after Retry-After; other
//     failures after an exponential backoff with full jitter.
//
// # The chain
//
// Every batch names the hash of the batch before it in its epoch (none for
// an epoch's first), and the cloud refuses a batch that does not name the
// last batch it applied. The uplink takes that hash from the cloud's last
// ack and keeps it in the journal (Journal.MarkAckedChain), so a restarted
// uplink chains its next batch without asking. When it does not know the
// hash (a journal from before it was kept) the batch names none; the cloud
// refuses it with a 409 batch_conflict naming the hash, and the uplink
// re-seals with it.
//
// After a crash anywhere in that round the next round resends the same
// bytes; the cloud applies each op exactly once, so a resend is harmless.
//
// # A cloud restored from a backup
//
// The cloud may lose what it acknowledged. Within an epoch its gap ack
// says so, and the uplink sends again from the watermark it names. Two
// cases no gap ack shows are covered apart. Before the first batch of a
// new epoch, the old epoch's last acknowledged op goes again alone (the
// probe), naming a previous hash no batch has, so that no cloud applies
// it, however often it is sent, and so that its sealed bytes say it is a
// probe after a restart too: a replay confirms the cloud still holds
// the old epoch's end; a refusal (a gap ack, or a batch_conflict for the
// hash) names the cloud's watermark, and the uplink drops its sealed
// batches (the new epoch's first among them) and sends again from there;
// sequence_diverged (another journal's op there) lets the new epoch go,
// the old one's end reported. No probe goes when the ack of the batch
// that ended the old epoch came just before (in a catch-up). The answer,
// or that ack, holds only until a send fails (the cloud may come back
// restored), the uplink idles, or it restarts: the new
// epoch's first batch, sent again from the outbox, goes after the probe
// again, sealed ahead of it in the outbox so that it goes first after a
// restart too. A restore that no failed send shows, between the probe's
// answer and the first batch's ack, is not caught. And a refusal at
// watermark 0 for an epoch this journal had acknowledgements in means the
// cloud lost a whole epoch and maybe earlier ones: the journal is sent
// again from its start, and the cloud compares op by op what it holds.
// The journal keeps that resend's point (Journal.ResendAll), moved by
// each ack, so a restarted uplink goes on with it, and the backlog counts
// the ops after it. Sending again never marks anything: only a signed ack
// does.
//
// A till with nothing to send would hear of no restore until its next
// sale, and of none if it never sold again. So an idle uplink probes too:
// at start, and then Config.IdleProbe (5 minutes by default; 0 turns it
// off) after its last post, it sends the probe of the last op the cloud
// acknowledged, whatever its epoch (one older than the journal's head
// when the till started an epoch it has not sold in). It is answered as
// any probe is: a replay, and nothing more is sent; a refusal, and the
// uplink sends again what the cloud lacks, from the journal's start when
// the cloud lost the op's whole epoch. A till with work to do sends no
// idle probe (every post puts the next one off), nor does one that
// has acknowledged nothing. A probe's answer ends a backoff and brings
// the uplink back online after a failure only when nothing waits to be
// sent behind it: then it is the link working again. Otherwise only the
// ack of the batch behind it does. Nor does its replay stand for the probe before a new epoch's first
// batch: an idle round forgets every probe's answer, as the cloud may be
// restored before that batch, however long after.
//
// # State
//
// State reports what the agent shows: online or offline, the backlog (ops
// and the age of the oldest), the last success and the last error, and the
// acknowledged ops by outcome (those of a replayed batch as duplicates:
// the cloud applied nothing).
//
// # What it must never do
//
// Trust an answer that does not verify with the cloud's key; mark an op
// acknowledged that the cloud's signed watermark does not cover; re-seal a
// batch that the cloud may still apply under its old bytes without first
// hearing from the cloud where it stands; send the same range under two
// different byte strings at once; log a card identifier in the clear.
package uplink
