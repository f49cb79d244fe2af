package journal_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
)

const crashChildEnv = "TILLPOINT_JOURNAL_CRASH_CHILD"

// crashChild appends from several goroutines until it is killed, printing
// "acked EPOCH SEQ ID N" for each op (N: the earnOp it appended) only after Append returned it.
func crashChild(path string) {
	ctx := context.Background()
	j, err := journal.Open(ctx, path, testOptions())
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: %v\n", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				n := w*100000 + i
				op, err := j.Append(ctx, earnOp(n))
				if err != nil {
					fmt.Fprintf(os.Stderr, "child: append: %v\n", err)
					os.Exit(4)
				}
				line := fmt.Sprintf("acked %d %d %s %d\n", op.Epoch, op.Seq, op.ID, n)
				mu.Lock()
				os.Stdout.WriteString(line) // unbuffered: one write(2) per ack
				mu.Unlock()
			}
		}()
	}
	select {}
}

type ack struct {
	epoch uint32
	seq   uint64
	id    loyalty.OpID
	n     int
}

// TestCrashAckedOpsSurviveSIGKILL defends invariant 1: an op Append has
// acknowledged survives kill -9. The test re-executes its own binary as a
// child that appends in a loop and prints every acknowledged op; the parent
// SIGKILLs it at a random moment, then checks that every acknowledged op is
// present and intact, the sequence is gapless, Verify passes, and the
// crashes were not mistaken for a restore (no new epoch).
func TestCrashAckedOpsSurviveSIGKILL(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	t.Parallel() // mostly waiting on children and fsync: let the other tests run meanwhile
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	const rounds = 20
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var all []ack
	for round := range rounds {
		roundStart := time.Now()
		acks, stderr := runCrashChild(t, path, rng)
		all = append(all, acks...)

		j, err := journal.Open(ctx, path, testOptions())
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v (child stderr: %s)", round, err, stderr)
		}
		rep, err := j.Verify(ctx)
		if err != nil {
			j.Close()
			t.Fatalf("round %d: Verify after SIGKILL: %v", round, err)
		}
		if rep.Epochs != 1 || (rep.Ops > 0 && rep.Epoch != 1) {
			j.Close()
			t.Fatalf("round %d: got %d epochs (last op in epoch %d), want 1: a crash was taken for a restore", round, rep.Epochs, rep.Epoch)
		}
		if uint64(rep.Ops) != rep.Seq {
			j.Close()
			t.Fatalf("round %d: got %d ops ending at seq %d, want gapless 1..%d", round, rep.Ops, rep.Seq, rep.Ops)
		}
		stored := map[loyalty.OpID]loyalty.Op{}
		for after := int64(0); ; {
			es, err := j.Entries(ctx, after, 1000)
			if err != nil {
				j.Close()
				t.Fatalf("round %d: Entries: %v", round, err)
			}
			if len(es) == 0 {
				break
			}
			for _, e := range es {
				stored[e.Op.ID] = e.Op
			}
			after = es[len(es)-1].Pos
		}
		for _, a := range all {
			op, ok := stored[a.id]
			want := earnOp(a.n)
			switch {
			case !ok:
				j.Close()
				t.Fatalf("round %d: acknowledged op %s (seq %d) lost after SIGKILL", round, a.id, a.seq)
			case op.Epoch != a.epoch || op.Seq != a.seq:
				j.Close()
				t.Fatalf("round %d: op %s: got epoch %d seq %d, want the acknowledged epoch %d seq %d", round, a.id, op.Epoch, op.Seq, a.epoch, a.seq)
			case op.Receipt != want.Receipt || op.Points != want.Points || op.Card != want.Card:
				j.Close()
				t.Fatalf("round %d: op %s: got receipt %s points %d, want %s and %d", round, a.id, op.Receipt, op.Points, want.Receipt, want.Points)
			}
		}
		if err := j.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		t.Logf("round %d: %d acks, journal holds %d ops, round took %v", round, len(acks), rep.Ops, time.Since(roundStart))
	}
	if len(all) == 0 {
		t.Fatalf("no round acknowledged any op: the test proved nothing")
	}
}

// runCrashChild starts a child appender, kills it with SIGKILL after a
// random number of acknowledgements plus a random delay, and returns what
// it acknowledged.
func runCrashChild(t *testing.T, path string, rng *rand.Rand) ([]ack, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashAckedOpsSurviveSIGKILL$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		acks []ack
		bad  error
	)
	progress := make(chan struct{}, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			a, err := parseAck(sc.Text())
			mu.Lock()
			if err != nil && bad == nil {
				bad = err
			}
			if err == nil {
				acks = append(acks, a)
			}
			mu.Unlock()
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	}()
	want := rng.IntN(30)
	deadline := time.After(30 * time.Second)
wait:
	for {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= want {
			break
		}
		select {
		case <-progress:
		case <-readDone:
			break wait
		case <-deadline:
			break wait
		}
	}
	time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond) // a random moment, not a sync point
	cmd.Process.Kill()
	<-readDone
	cmd.Wait()
	if bad != nil {
		t.Fatalf("child printed a bad line: %v (stderr: %s)", bad, stderr.String())
	}
	if strings.Contains(stderr.String(), "child:") {
		t.Fatalf("child failed before it was killed: %s", stderr.String())
	}
	return acks, stderr.String()
}

func parseAck(line string) (ack, error) {
	var a ack
	f := strings.Fields(line)
	if len(f) != 5 || f[0] != "acked" {
		return a, fmt.Errorf("line %q", line)
	}
	e, err1 := strconv.ParseUint(f[1], 10, 32)
	s, err2 := strconv.ParseUint(f[2], 10, 64)
	id, err3 := loyalty.ParseOpID(f[3])
	n, err4 := strconv.Atoi(f[4])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return a, fmt.Errorf("line %q", line)
	}
	return ack{epoch: uint32(e), seq: s, id: id, n: n}, nil
}
