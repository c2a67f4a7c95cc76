package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

func (r *Runner) runDirect(ctx context.Context, c Case) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "govm-case-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for name, data := range c.Files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	if c.Before != "" {
		before := exec.Command("sh", "-c", r.expand1(strings.ReplaceAll(c.Before, "{dir}", dir), r.Assets.BzImage, r.Assets.VMLinux, r.Assets.Initrd))
		before.Env = r.toolEnv()
		if out, err := before.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("before: %v: %s", err, out)
		}
	}
	prog, args := strings.ReplaceAll(c.Program, "{dir}", dir), r.expand(c.Args, r.Assets.BzImage, r.Assets.VMLinux, r.Assets.Initrd)
	if c.Program == "" {
		prog, args = r.Assets.Govm, append([]string{c.Command}, args...)
	}
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "{dir}", dir)
	}
	metrics := ""
	if c.isGovmRun() {
		f, err := os.CreateTemp("", "govm-metrics-*.json")
		if err != nil {
			return nil, err
		}
		f.Close()
		defer os.Remove(f.Name())
		metrics = f.Name()
		args = append(args, "--metrics", metrics)
	}
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = os.Environ()
	for _, e := range c.Env {
		cmd.Env = append(cmd.Env, strings.ReplaceAll(e, "{dir}", dir))
	}
	if len(c.GoPackages) > 0 {
		if cmd.Dir, err = moduleRoot(); err != nil {
			return nil, err
		}
	}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var stdin io.WriteCloser
	if c.Input != "" {
		if stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	if err = cmd.Start(); err != nil {
		return nil, err
	}
	if stdin != nil {
		go typeInput(ctx, stdin, &out, c.InputAfter, c.Input)
	}
	if c.KillAfter != "" {
		go killAfter(ctx, cmd.Process, &out, c.KillAfter)
	}
	err = cmd.Wait()
	if c.After != "" {
		after := exec.Command("sh", "-c", r.expand1(strings.ReplaceAll(c.After, "{dir}", dir), r.Assets.BzImage, r.Assets.VMLinux, r.Assets.Initrd))
		after.Env = r.toolEnv()
		after.Stdout, after.Stderr = &out, &out
		_ = after.Run()
	}
	res := &Result{Output: out.String(), GovmExit: -1}
	if metrics != "" {
		if b, err := os.ReadFile(metrics); err == nil {
			res.setMetrics(b)
		}
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.GovmExit = 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		res.GovmExit = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.GovmExit = 128 + int(ws.Signal()) // as a shell reports it
		}
	case ctx.Err() != nil:
		return res, fmt.Errorf("govm did not finish within %v", c.Timeout)
	default:
		return res, err
	}
	return res, nil
}

// toolEnv is the environment of a direct run's Before and After: the
// build directory first on PATH, so they find govm-host as L1's do.
func (r *Runner) toolEnv() []string {
	return append(os.Environ(), "PATH="+filepath.Dir(r.Assets.Govm)+":"+os.Getenv("PATH"))
}
