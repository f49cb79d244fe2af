package journal_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"github.com/tillpoint/tillpoint/internal/testdisk"
	"github.com/tillpoint/tillpoint/offline/journal"
)

// appendUntilError appends until Append fails (or n ops were acknowledged)
// and returns the acknowledged seqs and the error.
func appendUntilError(t *testing.T, j *journal.Journal, n int) ([]uint64, error) {
	t.Helper()
	var seqs []uint64
	for i := range n {
		op, err := j.Append(context.Background(), earnOp(i))
		if err != nil {
			return seqs, err
		}
		seqs = append(seqs, op.Seq)
	}
	return seqs, nil
}

// checkAfterFailure checks that every acknowledged op is there, the
// journal verifies, and appending works again and continues the sequence.
func checkAfterFailure(t *testing.T, j *journal.Journal, acked []uint64) {
	t.Helper()
	ctx := context.Background()
	rep := mustVerify(t, j)
	if rep.Ops != int64(len(acked)) || rep.Seq != uint64(len(acked)) {
		t.Fatalf("after the failure: got %d ops up to seq %d, want the %d acknowledged ones", rep.Ops, rep.Seq, len(acked))
	}
	op, err := j.Append(ctx, earnOp(1))
	if err != nil {
		t.Fatalf("Append once storage is back: %v", err)
	}
	if op.Seq != uint64(len(acked))+1 {
		t.Fatalf("Append once storage is back: got seq %d, want %d (no gap)", op.Seq, len(acked)+1)
	}
	mustVerify(t, j)
}

// TestDiskFullIsAnErrorNotAnAck defends invariant 1 when the disk fills:
// Append reports ErrStorageFull, nothing it refused is in the journal, and
// the journal is valid and usable once space is back. Two ways to fill the
// disk: a real full filesystem (a 4 MiB tmpfs, as root), and SQLite's
// max_page_count (anywhere), which fails writes with the same SQLITE_FULL.
func TestDiskFullIsAnErrorNotAnAck(t *testing.T) {
	t.Run("tmpfs", func(t *testing.T) {
		dir := testdisk.Tmpfs(t, "size=4m", "the max_page_count variant")
		j := openJournal(t, filepath.Join(dir, "journal.db"))
		acked, err := appendUntilError(t, j, 20)
		if err != nil {
			t.Fatalf("Append before the disk is full: %v", err)
		}
		filler := filepath.Join(dir, "filler")
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill the disk: got %v, want ENOSPC", err)
				}
				break
			}
		}
		for len(buf) > 1 { // fill the last partial blocks too
			buf = buf[:len(buf)/2]
			for {
				if _, err := f.Write(buf); err != nil {
					break
				}
			}
		}
		f.Close()
		more, err := appendUntilError(t, j, 100000)
		acked = append(acked, more...)
		if !errors.Is(err, journal.ErrStorageFull) {
			t.Fatalf("Append on a full disk: got %v, want ErrStorageFull", err)
		}
		t.Logf("full disk: %v", err)
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		checkAfterFailure(t, j, acked)
	})
	t.Run("max_page_count", func(t *testing.T) {
		j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
		acked, err := appendUntilError(t, j, 5)
		if err != nil {
			t.Fatal(err)
		}
		if err := journal.LimitPages(context.Background(), j, 0); err != nil {
			t.Fatal(err)
		}
		more, err := appendUntilError(t, j, 100000)
		acked = append(acked, more...)
		if !errors.Is(err, journal.ErrStorageFull) {
			t.Fatalf("Append past max_page_count: got %v, want ErrStorageFull", err)
		}
		if err := journal.LimitPages(context.Background(), j, 1000); err != nil {
			t.Fatal(err)
		}
		checkAfterFailure(t, j, acked)
	})
}

// TestReadOnlyDatabaseIsAnErrorNotAnAck makes the journal's files immutable
// under a running journal (chattr +i, which stops root too and applies to
// open files), opens it on a filesystem mounted read-only, chmods it (as
// non-root: root ignores modes), and opens it with ReadOnly.
func TestReadOnlyDatabaseIsAnErrorNotAnAck(t *testing.T) {
	t.Run("immutable files under a running journal", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "journal.db")
		j := openJournal(t, path)
		acked, err := appendUntilError(t, j, 5)
		if err != nil {
			t.Fatal(err)
		}
		files := []string{path, path + "-wal"}
		for _, f := range files {
			setImmutable(t, f, true)
		}
		t.Cleanup(func() {
			for _, f := range files {
				setImmutable(t, f, false)
			}
		})
		_, err = j.Append(context.Background(), earnOp(6))
		if !errors.Is(err, journal.ErrReadOnly) && !errors.Is(err, journal.ErrIO) {
			t.Fatalf("Append to an immutable file: got %v, want ErrReadOnly or ErrIO", err)
		}
		t.Logf("immutable file: %v", err)
		for _, f := range files {
			setImmutable(t, f, false)
		}
		checkAfterFailure(t, j, acked)
	})
	t.Run("filesystem mounted read-only", func(t *testing.T) {
		dir := testdisk.Tmpfs(t, "size=16m", "the chmod variant")
		path := filepath.Join(dir, "journal.db")
		j := openJournal(t, path)
		acked, err := appendUntilError(t, j, 5)
		if err != nil {
			t.Fatal(err)
		}
		j.Close() // the kernel refuses a read-only remount under open writers
		if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			t.Fatalf("remount read-only: %v", err)
		}
		_, err = journal.Open(context.Background(), path, testOptions())
		if !errors.Is(err, journal.ErrReadOnly) && !errors.Is(err, journal.ErrIO) {
			t.Fatalf("Open on a read-only filesystem: got %v, want ErrReadOnly or ErrIO", err)
		}
		t.Logf("read-only filesystem: %v", err)
		if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT, ""); err != nil {
			t.Fatalf("remount read-write: %v", err)
		}
		checkAfterFailure(t, openJournal(t, path), acked)
	})
	t.Run("opened read-only", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "journal.db")
		j := openJournal(t, path)
		if _, err := appendUntilError(t, j, 3); err != nil {
			t.Fatal(err)
		}
		ro := openReadOnly(t, path)
		if _, err := ro.Append(context.Background(), earnOp(4)); !errors.Is(err, journal.ErrReadOnly) {
			t.Fatalf("Append on a read-only journal: got %v, want ErrReadOnly", err)
		}
		if rep := mustVerify(t, ro); rep.Ops != 3 {
			t.Fatalf("Verify read-only: got %d ops, want 3", rep.Ops)
		}
	})
	t.Run("file mode 0444", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root ignores file modes; the remount variant covers this case")
		}
		path := filepath.Join(t.TempDir(), "journal.db")
		j := openJournal(t, path)
		if _, err := appendUntilError(t, j, 3); err != nil {
			t.Fatal(err)
		}
		j.Close()
		for _, p := range []string{path, filepath.Dir(path)} {
			if err := os.Chmod(p, 0o555); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { os.Chmod(filepath.Dir(path), 0o755) })
		j2, err := journal.Open(context.Background(), path, testOptions())
		if err == nil {
			_, err = j2.Append(context.Background(), earnOp(4))
			j2.Close()
		}
		if !errors.Is(err, journal.ErrReadOnly) && !errors.Is(err, journal.ErrIO) {
			t.Fatalf("Open and Append on a read-only file: got %v, want ErrReadOnly or ErrIO", err)
		}
	})
}

// TestCorruptDatabaseIsAnError overwrites parts of a closed journal's file.
func TestCorruptDatabaseIsAnError(t *testing.T) {
	ctx := context.Background()
	build := func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "journal.db")
		j := openJournal(t, path)
		if _, err := appendUntilError(t, j, 200); err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Run("header", func(t *testing.T) {
		path := build(t)
		scribble(t, path, 0, 100)
		if _, err := journal.Open(ctx, path, testOptions()); !errors.Is(err, journal.ErrCorrupt) {
			t.Fatalf("Open with a garbled header: got %v, want ErrCorrupt", err)
		}
	})
	t.Run("pages", func(t *testing.T) {
		path := build(t)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		scribble(t, path, fi.Size()/2, 8192)
		j, err := journal.Open(ctx, path, journal.Options{ReadOnly: true})
		if err == nil {
			_, err = j.Verify(ctx)
			j.Close()
		}
		if !errors.Is(err, journal.ErrCorrupt) {
			t.Fatalf("Open and Verify with garbled pages: got %v, want ErrCorrupt", err)
		}
	})
}

func scribble(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, n)
	for i := range junk {
		junk[i] = byte(i*7 + 13)
	}
	if _, err := f.WriteAt(junk, off); err != nil {
		t.Fatal(err)
	}
}

// setImmutable sets or clears the file's immutable flag (chattr +i,
// FS_IOC_SETFLAGS), or skips the test where that is not possible (not
// root, a filesystem without the flag).
func setImmutable(t *testing.T, path string, on bool) {
	t.Helper()
	const (
		fsIocGetflags = 0x80086601
		fsIocSetflags = 0x40086602
		fsImmutableFl = 0x10
	)
	if os.Geteuid() != 0 {
		t.Skip("the immutable flag needs root; the chmod variant covers this case")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var flags int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocGetflags, uintptr(unsafe.Pointer(&flags))); errno != 0 {
		t.Skipf("read file flags of %s: %v", path, errno)
	}
	if on {
		flags |= fsImmutableFl
	} else {
		flags &^= fsImmutableFl
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocSetflags, uintptr(unsafe.Pointer(&flags))); errno != 0 {
		if on {
			t.Skipf("set the immutable flag on %s: %v", path, errno)
		}
		t.Errorf("clear the immutable flag on %s: %v", path, errno)
	}
}
