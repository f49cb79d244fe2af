// Package testdisk gives tests a real file system small enough to fill: a
// tmpfs mounted for one test and unmounted after it, so that "the disk is
// full" is the kernel's ENOSPC, not a stand-in. It is for tests only, and
// it never mounts anything a test did not ask for: without root (or
// CAP_SYS_ADMIN) it skips the test, saying what covers the case instead.
package testdisk

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs with the mount options opts ("size=4m", and for a
// server that runs as another user "uid=...,gid=...") on a fresh
// directory that every user may reach, and returns the directory. It
// skips t where mounting is not allowed, naming otherwise: the test that
// covers the case without a real file system.
func Tmpfs(t testing.TB, opts, otherwise string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("mounting a tmpfs needs root; %s covers this case", otherwise)
	}
	dir, err := os.MkdirTemp("", "tillpoint-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		os.Remove(dir)
		t.Skipf("cannot mount a tmpfs (%v); %s covers this case", err, otherwise)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount the test's tmpfs %s: %v", dir, err)
			return
		}
		os.Remove(dir)
	})
	return dir
}

// Fill writes a file in dir until dir's file system has no room left, to
// the byte, and returns the file's path: removing it makes the room again.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err = f.Write(buf); err != nil {
				break
			}
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("fill the disk %s: %v, want ENOSPC", dir, err)
		}
	}
	return path
}
