package e2e

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

// l1Pin, on L1's command line, runs the case (govm, its guest, the
// host-side servers, the peers) on L1's CPU 0 only (scripts/l1-init) and
// keeps L1's other CPU idle. It is the workaround for a fault in QEMU's
// TCG emulation of SVM (docs/nested-tcg-fault.md): when
// VMRUN injects an interrupt, TCG delivers it at once but leaves the
// vector as the CPU's pending exception, and if the emulator is asked to
// leave its execution loop before the next exception, #VMEXIT or
// interrupt clears that, it delivers the vector a second time, at the
// first instruction of the handler, with interrupts off. The requests to
// leave that come with no interrupt for the running CPU are mostly kicks
// for the other CPU: its timer and its interrupts, rare with that CPU idle
// (docs/nested-tcg-fault.md). Every case runs so, unless
// $GOVM_E2E_L1_PIN is 0.
const l1Pin = "govm.cpus=0"

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// l1Panic matches an L1 kernel crash on its console.
var l1Panic = regexp.MustCompile(`Kernel panic - not syncing|BUG: |general protection fault|stack guard page`)

func (r *Runner) runNested(ctx context.Context, c Case) (*Result, error) {
	if r.Slots != nil {
		select {
		case r.Slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-r.Slots }()
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	args := r.expand(c.Args, l1BzImage, l1VMLinux, l1Initrd)
	const l1Dir = "/case"
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "{dir}", l1Dir)
	}
	if c.isGovmRun() {
		args = append(args, "--metrics", "/tmp/metrics.json")
		// $GOVM_E2E_L2_APPEND adds to the L2 guest's command line, for
		// experiments with the nested emulator's faults.
		if v := os.Getenv("GOVM_E2E_L2_APPEND"); v != "" {
			args = append(args, "--append", v)
		}
	}
	sc := l1Script{
		Dir: l1Dir, Mode: "plain", MarkerRC: markerRC, MarkerMetrics: markerMetrics,
		KillAfter: c.KillAfter, InputAfter: c.InputAfter, Input: c.Input,
	}
	switch {
	case c.KillAfter != "":
		sc.Mode = "kill"
	case c.Input != "":
		sc.Mode = "input"
	}
	if c.Before != "" {
		sc.Before = r.expand1(strings.ReplaceAll(c.Before, "{dir}", l1Dir), l1BzImage, l1VMLinux, l1Initrd)
	}
	if c.After != "" {
		sc.After = r.expand1(strings.ReplaceAll(c.After, "{dir}", l1Dir), l1BzImage, l1VMLinux, l1Initrd)
	}
	sc.Govm = "govm " + c.Command
	if c.Program != "" {
		sc.Govm = shellQuote(strings.ReplaceAll(c.Program, "{dir}", l1Dir))
	}
	for _, a := range args {
		sc.Govm += " " + shellQuote(a)
	}
	var tree *goTree
	if len(c.GoPackages) > 0 {
		root, err := moduleRoot()
		if err != nil {
			return nil, err
		}
		if tree, err = buildGoTree(root, c.GoPackages...); err != nil {
			return nil, err
		}
		sc.Cd = tree.ModRoot
		sc.Env = append(sc.Env, "PATH="+tree.GoBinDir+":/bin:/sbin")
		sc.Env = append(sc.Env, tree.Env...)
	}
	for _, e := range c.Env {
		sc.Env = append(sc.Env, strings.ReplaceAll(e, "{dir}", l1Dir))
	}
	var script strings.Builder
	if err := l1ScriptTmpl.Execute(&script, sc); err != nil {
		return nil, fmt.Errorf("L1 script: %w", err)
	}
	files := []cpioFile{{Name: "case.sh", Mode: 0o755, Data: []byte(script.String())}}
	for name, data := range c.Files {
		files = append(files, cpioFile{Name: "case/" + name, Mode: 0o644, Data: data})
	}
	for name, data := range c.RootFiles {
		files = append(files, cpioFile{Name: name, Mode: 0o644, Data: data})
	}
	if tree != nil {
		files = append(files, tree.Files...)
	}
	if c.NeedVMLinux {
		data, err := os.ReadFile(r.Assets.VMLinux)
		if err != nil {
			return nil, err
		}
		files = append(files, cpioFile{Name: "l2/vmlinux", Mode: 0o644, Data: data})
	}
	initrd, err := r.Assets.l1Initrd(files, c.NeedPeers)
	if err != nil {
		return nil, err
	}
	defer os.Remove(initrd)

	var extra []string
	if c.L1Disk != "" {
		extra = append(extra, "-drive", "file="+c.L1Disk+",format=raw,if=virtio,readonly=on")
	}
	cmd := l1Command(ctx, r.Assets.L1Kernel, initrd, false, extra...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var out bytes.Buffer
	done := make(chan struct{})
	go collect(pr, &out, done)
	runErr := cmd.Run()
	pw.Close()
	<-done
	res := &Result{Output: out.String(), GovmExit: -1}
	if v, ok := res.Marker(markerRC); ok {
		res.GovmExit, _ = strconv.Atoi(v)
	}
	if _, after, ok := strings.Cut(res.Output, markerMetrics+"-BEGIN\n"); ok {
		if m, _, ok := strings.Cut(after, markerMetrics+"-END"); ok {
			res.setMetrics([]byte(m))
		}
	}
	if _, ok := res.Marker(markerL1End); !ok {
		if !strings.Contains(res.Output, markerRC) && (l1Panic.MatchString(res.Output) || (runErr == nil && ctx.Err() == nil)) {
			// L1's kernel panicked, or L1 reset (QEMU, run with
			// -no-reboot, exited cleanly) before govm returned: a fault
			// of the emulated L1, not of govm or the L2 guest.
			return res, fmt.Errorf("%w: L1 crashed or reset before govm returned", errEmulatorFault)
		}
		if ctx.Err() != nil && !strings.Contains(res.Output, markerRC) {
			// govm bounds every guest with --timeout; an L1 that has not
			// reported by the case's bound has itself stopped.
			return res, fmt.Errorf("%w: L1 stopped responding (no report within %v)", errEmulatorFault, c.Timeout)
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("nested run did not finish within %v", c.Timeout)
		}
		return res, fmt.Errorf("L1 ended without reporting (qemu: %v)", runErr)
	}
	return res, nil
}

// l1Script is what l1script.tmpl makes the case's /case.sh from.
type l1Script struct {
	Dir                     string   // where the case's files are in L1
	Before, After           string   // shell commands, placeholders expanded
	Govm                    string   // the command, each word quoted
	Env                     []string // NAME=value for govm's subshell
	Cd                      string   // govm's working directory, if any
	Mode                    string   // plain, kill (KillAfter) or input (Input)
	KillAfter, InputAfter   string
	Input                   string
	MarkerRC, MarkerMetrics string
}

//go:embed l1script.tmpl
var l1ScriptText string

var l1ScriptTmpl = template.Must(template.New("l1script").Funcs(template.FuncMap{"q": shellQuote}).Parse(l1ScriptText))
