package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// event is one line of 'go test -json' (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type result struct {
	pkg, test string
	action    string // pass, fail, skip
	elapsed   float64
	output    []string
	note      string // GAP or DEFECT line
}

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

func run(in io.Reader, out io.Writer) int {
	results := map[string]*result{}
	var order []string
	failed := false
	pkgDone := map[string]string{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(out, sc.Text()) // build errors and the like
			continue
		}
		if e.Test == "" {
			switch e.Action {
			case "pass", "fail", "skip":
				pkgDone[e.Package] = e.Action
				if e.Action == "fail" {
					failed = true
				}
			case "output":
				if strings.HasPrefix(e.Output, "FAIL") || strings.Contains(e.Output, "panic:") || strings.Contains(e.Output, "[build failed]") {
					fmt.Fprint(out, e.Output)
				}
			case "build-output":
				fmt.Fprint(out, e.Output)
			}
			continue
		}
		id := e.Package + " " + e.Test
		r := results[id]
		if r == nil {
			r = &result{pkg: e.Package, test: e.Test}
			results[id] = r
			order = append(order, id)
		}
		switch e.Action {
		case "output":
			r.output = append(r.output, e.Output)
			for _, tag := range []string{"GAP: ", "DEFECT: "} {
				if i := strings.Index(e.Output, tag); i >= 0 && r.note == "" {
					r.note = strings.TrimSpace(e.Output[i:])
				}
			}
		case "pass", "fail", "skip":
			r.action, r.elapsed = e.Action, e.Elapsed
			switch e.Action {
			case "fail":
				failed = true
				if !strings.Contains(e.Test, "/") {
					fmt.Fprintf(out, "--- FAIL: %s (%s)\n%s", e.Test, path.Base(e.Package), strings.Join(r.output, ""))
				}
			case "skip":
				if !strings.Contains(e.Test, "/") || r.note != "" {
					fmt.Fprintf(out, "--- SKIP: %s: %s\n", e.Test, skipReason(r))
				}
			case "pass":
				if !strings.Contains(e.Test, "/") {
					fmt.Fprintf(out, "--- PASS: %s (%.1fs)\n", e.Test, e.Elapsed)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(out, "hilreport: read go test output: %v\n", err)
		failed = true
	}
	printTable(out, results, order)
	for id, r := range results {
		if r.action == "" {
			fmt.Fprintf(out, "hilreport: %s never finished (timeout or crash?)\n", id)
			failed = true
		}
	}
	if len(pkgDone) == 0 {
		fmt.Fprintln(out, "hilreport: no package finished: did 'go test -json' run?")
		failed = true
	}
	if failed {
		fmt.Fprintln(out, "hil: FAIL")
		return 1
	}
	fmt.Fprintln(out, "hil: ok")
	return 0
}

func skipReason(r *result) string {
	if r.note != "" {
		return r.note
	}
	for i := len(r.output) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(r.output[i]); s != "" && !strings.HasPrefix(s, "---") && !strings.HasPrefix(s, "===") {
			return s
		}
	}
	return "skipped"
}

// printTable prints one row per top-level test, and one per subtest
// that carries a GAP or DEFECT note.
func printTable(out io.Writer, results map[string]*result, order []string) {
	var rows []*result
	for _, id := range order {
		r := results[id]
		if !strings.Contains(r.test, "/") || r.note != "" {
			rows = append(rows, r)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		si, sj := strings.HasPrefix(rows[i].test, "TestScenario"), strings.HasPrefix(rows[j].test, "TestScenario")
		if si != sj {
			return si
		}
		if si {
			return rows[i].test < rows[j].test
		}
		return false
	})
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SCENARIO\tPACKAGE\tRESULT\tDURATION")
	for _, r := range rows {
		res := strings.ToUpper(r.action)
		switch {
		case r.action == "":
			res = "UNFINISHED"
		case r.action == "skip" && strings.HasPrefix(r.note, "GAP"):
			res = "GAP"
		case r.action == "skip" && strings.HasPrefix(r.note, "DEFECT"):
			res = "DEFECT"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.test, path.Base(r.pkg), res, (time.Duration(r.elapsed * float64(time.Second))).Round(100*time.Millisecond))
	}
	w.Flush()
}
