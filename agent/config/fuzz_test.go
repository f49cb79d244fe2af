package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tillpoint/tillpoint/agent/config"
)

// FuzzLoad: any bytes either load into a valid configuration or are refused
// with a *config.Error whose problems each name the file; Load never panics.
func FuzzLoad(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("..", "..", "packaging", "agent.toml")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("[printer]\nwidth = 40\n"))
	f.Add([]byte("[[scanner]]\nusb = \"0c2e:0b61\"\n[[scanner]]\npath = \"/dev/ttyACM0\"\nbaud = -1\n"))
	f.Add([]byte("listen = \"127.0.0.1:7700\"\n[session]\nidle_timeout = \"2m\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Load("agent.toml", data)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("loaded a config that does not validate: %v", verr)
			}
			return
		}
		if c != nil {
			t.Fatalf("got a config with the error %v", err)
		}
		var ce *config.Error
		if !errors.As(err, &ce) || len(ce.Problems) == 0 {
			t.Fatalf("got %T %v, want a *config.Error with problems", err, err)
		}
		for _, p := range ce.Problems {
			if p.File != "agent.toml" || p.Msg == "" {
				t.Fatalf("problem without file or message: %+v", p)
			}
		}
	})
}
