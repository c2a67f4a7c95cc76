package main

import (
	"bytes"
	"encoding/binary"
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

// TestExecErrors: what a user gets wrong is one line and exit 1, before
// anything boots, with nothing left in the cache.
func TestExecErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	// A setup header is all the checks before boot read.
	kernel := fakeBzImage(t, dir, "6.1.0-test")
	mods := filepath.Join(dir, "mods")
	os.MkdirAll(mods, 0o755)
	os.WriteFile(filepath.Join(mods, "modules.dep"), []byte("kernel/virtio_pci.ko:\n"), 0o644)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no dash", []string{"exec", "--kernel", kernel, "true"}, "after --"},
		{"no command", []string{"exec", "--kernel", kernel, "--"}, "after --"},
		{"no kernel", []string{"exec", "--", "true"}, "kernel"},
		{"missing share", []string{"exec", "--kernel", kernel, "--share", filepath.Join(dir, "nope"), "--", "true"}, "no such file"},
		{"no modules dir", []string{"exec", "--kernel", kernel, "--", "true"}, "/lib/modules/6.1.0-test"},
		{"module missing", []string{"exec", "--kernel", kernel, "--modules", mods, "--", "true"}, "virtio_console"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := execute(c.args, os.Stdin, &out, &errb)
			if code != ExitError || strings.Count(errb.String(), "\n") != 1 || !strings.Contains(errb.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want 1 and one line with %q", code, errb.String(), c.want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q", out.String())
			}
		})
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "cache", "govm", "exec")); len(ents) != 0 {
		t.Errorf("the cache holds %d files after failed runs", len(ents))
	}
}

// fakeBzImage writes a minimal file that parses as a bzImage whose
// kernel_version string is release.
func fakeBzImage(t *testing.T, dir, release string) string {
	b := make([]byte, 8192)
	le := binary.LittleEndian
	b[0x1f1] = 4                        // setup_sects
	le.PutUint16(b[0x1fe:], 0xaa55)     // boot_flag
	b[0x201] = 0x66                     // jump: the header runs to 0x268
	le.PutUint32(b[0x202:], 0x53726448) // "HdrS"
	le.PutUint16(b[0x206:], 0x020f)     // protocol 2.15
	le.PutUint16(b[0x20e:], 0x300)      // kernel_version at 0x500
	b[0x211] = 1                        // LOADED_HIGH
	le.PutUint16(b[0x236:], 1)          // XLF_KERNEL_64
	copy(b[0x500:], release+" (test@example) #1 SMP\x00")
	p := filepath.Join(dir, "bzImage")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
