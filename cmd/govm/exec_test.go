package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govm/govm/guest/execinit"
)

func TestParseShares(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for _, c := range []struct {
		specs []string
		want  string // "dir tag ro" per share, or the error's text
	}{
		{[]string{dir}, dir + " share0 false"},
		{[]string{dir + ":data,ro", dir}, dir + " data true;" + dir + " share1 false"},
		{[]string{dir + ",rw"}, `unknown option "rw"`},
		{[]string{dir + ":"}, "tag must be"},
		{[]string{dir + ":" + strings.Repeat("t", 37)}, "tag must be"},
		{[]string{dir + ":govm-root"}, "is taken"},
		{[]string{dir + ":a", dir + ":a"}, "is taken"},
		{[]string{filepath.Join(dir, "missing")}, "no such file"},
		{[]string{file}, "not a directory"},
		{[]string{",ro"}, "no directory"},
	} {
		shares, err := parseShares(c.specs)
		var got []string
		for _, s := range shares {
			got = append(got, s.Dir+" "+s.Tag+" "+map[bool]string{true: "true", false: "false"}[s.ReadOnly])
		}
		g := strings.Join(got, ";")
		if err != nil {
			g = err.Error()
		}
		if !strings.Contains(g, c.want) {
			t.Errorf("%v: %q, want %q", c.specs, g, c.want)
		}
	}
}

func TestControlLines(t *testing.T) {
	c := newControl()
	for _, chunk := range []string{"star", "ted\nerror mount", " failed\n", strings.Repeat("x", 5000)} {
		c.Write([]byte(chunk))
	}
	started, initErr := c.state()
	if !started || initErr != "mount failed" {
		t.Errorf("started %v, error %q", started, initErr)
	}
	if len(c.line) > 4096 {
		t.Errorf("an unended line holds %d bytes", len(c.line))
	}
	// The config goes out once the guest reads the port.
	c.sendConfig(&execinit.Config{Args: []string{"true"}})
	line, err := readLine(c.toGuest)
	if err != nil || !strings.HasPrefix(line, `{"Args":["true"]`) {
		t.Errorf("config line %q %v", line, err)
	}
	c.closeToGuest()
}

func readLine(r io.Reader) (string, error) {
	var b bytes.Buffer
	one := make([]byte, 1)
	for {
		if _, err := r.Read(one); err != nil {
			return b.String(), err
		}
		if one[0] == '\n' {
			return b.String(), nil
		}
		b.WriteByte(one[0])
	}
}

func TestEscapeReader(t *testing.T) {
	quit := make(chan struct{})
	e := &escapeReader{r: strings.NewReader("ab\x01\x01c\x01xignored"), quit: quit}
	got, err := io.ReadAll(e)
	if err != nil || string(got) != "ab\x01c" {
		t.Errorf("read %q %v", got, err)
	}
	select {
	case <-quit:
	default:
		t.Error("Ctrl-A x did not quit")
	}
}
