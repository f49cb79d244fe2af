package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Load decodes data (the contents of file, which names it in errors) over
// Default and validates the result. Every problem is reported with its line
// and dotted key; unknown keys are problems too.
func Load(file string, data []byte) (*Config, error) {
	c := Default()
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, decodeError(file, data, err)
	}
	pos, err := index(data)
	if err != nil {
		return nil, decodeError(file, data, err)
	}
	c.fill()
	if err := c.validate(file, pos); err != nil {
		return nil, err
	}
	return c, nil
}

// fill sets the defaults of tables that appear in a file without some of their keys.
func (c *Config) fill() {
	if p := c.Printer; p != nil {
		if p.Width == 0 {
			p.Width = DefaultPrinterWidth
		}
		if p.CodePage == "" {
			p.CodePage = DefaultCodePage
		}
		p.CodePage = strings.ToLower(p.CodePage)
	}
	for i := range c.Scanners {
		if c.Scanners[i].Kind == "" {
			c.Scanners[i].Kind = "serial"
		}
	}
}

func decodeError(file string, data []byte, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		e := &Error{}
		for _, d := range strict.Errors {
			line, _ := d.Position()
			e.Problems = append(e.Problems, Problem{File: file, Line: line, Key: strings.Join(d.Key(), "."),
				Msg: "unknown key; check its spelling and the table it is in (see packaging/agent.toml)"})
		}
		return e
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		key := strings.Join(de.Key(), ".")
		if key == "" {
			key = keyAt(data, line)
		}
		return &Error{Problems: []Problem{{File: file, Line: line, Key: key, Msg: strings.TrimPrefix(de.Error(), "toml: ")}}}
	}
	return &Error{Problems: []Problem{{File: file, Msg: fmt.Sprintf("not valid TOML: %v", err)}}}
}

// keyAt returns the key set on a line of a document that parses, or "".
func keyAt(data []byte, line int) string {
	pos, err := index(data)
	if err != nil {
		return ""
	}
	for k, l := range pos {
		if l == line && !strings.HasSuffix(k, "]") {
			return k
		}
	}
	return ""
}

// positions maps dotted keys ("printer.width", "scanner[1].path") to the
// line where the file sets them.
type positions map[string]int

func (p positions) line(key string) int {
	if p == nil {
		return 0
	}
	for {
		if l, ok := p[key]; ok {
			return l
		}
		// Fall back to the enclosing table: "scanner[0]" for "scanner[0].kind".
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
}

// index walks the document's expressions and records each key's line.
func index(data []byte) (positions, error) {
	pos := positions{}
	arrays := map[string]int{}
	var table string
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			name := keyOf(e.Key())
			if e.Kind == unstable.ArrayTable {
				n := arrays[name]
				arrays[name] = n + 1
				name = fmt.Sprintf("%s[%d]", name, n)
			}
			table = name
			pos[table] = lineOf(&p, e.Key())
		case unstable.KeyValue:
			k := keyOf(e.Key())
			if table != "" {
				k = table + "." + k
			}
			pos[k] = lineOf(&p, e.Key())
		}
	}
	return pos, p.Error()
}

func keyOf(it unstable.Iterator) string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return strings.Join(parts, ".")
}

func lineOf(p *unstable.Parser, it unstable.Iterator) int {
	if !it.Next() {
		return 0
	}
	return p.Shape(it.Node().Raw).Start.Line
}
