package journal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"
)

// sidecar is the small file next to the database (PATH-epoch) that lets
// Open notice a database that lost continuity; see the package doc.
type sidecar struct {
	Version int       `json:"version"`
	Journal string    `json:"journal"`
	Token   string    `json:"token"`
	Epoch   uint32    `json:"epoch"`
	Seq     uint64    `json:"seq"`
	Updated time.Time `json:"updated"`
}

// SidecarPath returns the path of the epoch sidecar of the journal at path.
func SidecarPath(path string) string { return path + "-epoch" }

func readSidecar(path string) (sidecar, error) {
	var s sidecar
	b, err := os.ReadFile(SidecarPath(path))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("epoch sidecar %s: %w", SidecarPath(path), err)
	}
	if s.Version != 1 || s.Journal == "" || s.Token == "" {
		return s, fmt.Errorf("epoch sidecar %s: not a version 1 sidecar", SidecarPath(path))
	}
	return s, nil
}

// writeSidecarFile replaces the sidecar atomically and durably.
func writeSidecarFile(path string, s sidecar) error {
	s.Version = 1
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	name := SidecarPath(path)
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write epoch sidecar: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write epoch sidecar: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync epoch sidecar: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write epoch sidecar: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("replace epoch sidecar: %w", err)
	}
	dir, err := os.Open(filepath.Dir(name))
	if err != nil {
		return fmt.Errorf("sync journal directory: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("sync journal directory: %w", err)
	}
	return nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// lostEpochFloor is the lowest epoch a journal that lost continuity
// starts: the seconds since its database was created (a uint32 lasts 136
// years of them). head+1 alone is not enough. A copy restored from a
// backup without its sidecar cannot see the epochs the original started
// after the backup, and head+1 may be one of them, at which the cloud
// holds the original's ops: the copy's new sales would diverge and be
// held back. A later copy reads a later clock, so it starts above the
// epochs the original started before it (unless the till's clock went
// back, or the original started more epochs than seconds went by: then
// head+1, as before).
func (j *Journal) lostEpochFloor() uint32 {
	if j.created.IsZero() {
		return 0
	}
	seconds := j.opts.Now().Sub(j.created) / time.Second
	return uint32(min(max(seconds, 0), math.MaxUint32-1))
}

func before(a, b head) bool {
	return a.epoch < b.epoch || (a.epoch == b.epoch && a.seq < b.seq)
}

// checkContinuity compares the database with its sidecar, starts a new
// epoch when continuity was lost, rotates the continuity token and writes
// the sidecar. It runs at Open, before the writer goroutine starts.
func (j *Journal) checkContinuity(ctx context.Context) error {
	meta, err := readMeta(ctx, j.wdb)
	if err != nil {
		return err
	}
	h, err := readHead(ctx, j.wdb)
	if err != nil {
		return err
	}
	var hasOps bool
	if err := j.wdb.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM ops)").Scan(&hasOps); err != nil {
		return fmt.Errorf("read ops: %w", classify(err))
	}
	sc, scErr := readSidecar(j.path)
	if scErr != nil && !errors.Is(scErr, fs.ErrNotExist) {
		j.log.Warn("journal epoch sidecar unreadable", slog.Any(logError, scErr))
	}
	scHead := head{epoch: sc.Epoch, seq: sc.Seq}
	var reason string
	switch {
	case h.epoch == 0 && scErr == nil:
		reason = fmt.Sprintf("new database where a journal had reached epoch %d seq %d", sc.Epoch, sc.Seq)
	case h.epoch == 0:
		reason = "new journal"
	case scErr != nil && hasOps:
		reason = "epoch sidecar missing or unreadable: journal copied or restored"
	case scErr != nil:
	case sc.Journal != j.id:
		reason = "epoch sidecar belongs to another journal: database replaced"
	case sc.Token != meta["token"] && sc.Token != meta["prev_token"]:
		reason = "continuity token does not match: journal restored from a backup"
	case before(h, scHead):
		reason = fmt.Sprintf("journal ends at epoch %d seq %d but had reached epoch %d seq %d: restored from a backup",
			h.epoch, h.seq, sc.Epoch, sc.Seq)
	}
	token, err := randomHex(16)
	if err != nil {
		return err
	}
	tx, err := j.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("check continuity: %w", classify(err))
	}
	defer tx.Rollback()
	epoch := h.epoch
	if reason != "" {
		epoch++
		if h.epoch > 0 { // not a new database
			epoch = max(epoch, j.lostEpochFloor())
		}
		if scErr == nil && sc.Epoch >= epoch {
			epoch = sc.Epoch + 1
		}
	}
	if epoch < j.opts.MinEpoch {
		if reason == "" {
			reason = fmt.Sprintf("enrolled where the cloud holds this terminal's epochs below %d", j.opts.MinEpoch)
		}
		epoch = j.opts.MinEpoch
	}
	if reason != "" {
		if _, err := startEpoch(ctx, tx, epoch, j.opts.Now(), reason); err != nil {
			return err
		}
		level := slog.LevelWarn
		if h.epoch == 0 && scErr != nil {
			level = slog.LevelInfo
		}
		j.log.Log(ctx, level, "journal started a new epoch", slog.Uint64(logEpoch, uint64(epoch)), slog.String(logReason, reason))
	}
	if err := writeMeta(ctx, tx, map[string]string{"token": token, "prev_token": meta["token"]}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("check continuity: %w", classify(err))
	}
	if h, err = readHead(ctx, j.wdb); err != nil {
		return err
	}
	j.w.sidecarToken = token
	j.w.sidecarHead = h
	j.w.sidecarAt = time.Now()
	return writeSidecarFile(j.path, sidecar{Journal: j.id, Token: token, Epoch: h.epoch, Seq: h.seq, Updated: j.opts.Now().UTC()})
}

// sidecarBehind reports whether the writer's head moved since the sidecar
// last recorded it, and the sidecar is to record it.
func (w *writer) sidecarBehind() bool {
	return !w.stale && w.sidecarToken != "" && w.head != w.sidecarHead
}

// writeSidecar records the writer's head in the sidecar at most once per
// SidecarInterval (always when force or an epoch changed). The sidecar only
// helps detect a restore, so a failure is logged, not returned.
func (j *Journal) writeSidecar(force bool) {
	w := &j.w
	if !w.sidecarBehind() {
		return
	}
	if !force && !w.sidecarDue && time.Since(w.sidecarAt) < j.opts.SidecarInterval {
		return
	}
	err := writeSidecarFile(j.path, sidecar{Journal: j.id, Token: w.sidecarToken, Epoch: w.head.epoch, Seq: w.head.seq, Updated: j.opts.Now().UTC()})
	w.sidecarAt = time.Now()
	if err != nil {
		j.log.Warn("journal could not record its high-water mark", slog.Any(logError, err))
		return
	}
	w.sidecarHead, w.sidecarDue = w.head, false
}
