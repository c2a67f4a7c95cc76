package e2e

import (
	"encoding/json"
	"regexp"
	"time"
)

// Case is one govm invocation. Args may use the placeholders {bzImage},
// {vmlinux} and {initrd}.
type Case struct {
	// Command is the govm subcommand; default "run".
	Command string
	// Program, if set, is run with Args in govm's place (Command is then
	// not used): a command on PATH (L1's in nested mode) or a path, where
	// {dir} names the scratch directory.
	Program string
	Args    []string
	Timeout time.Duration // for one attempt of the whole run; default 3 minutes
	// NeedVMLinux carries the ELF vmlinux into L1 (it is large, so only
	// when asked).
	NeedVMLinux bool
	// NeedPeers carries QEMU and gokvm into L1 (build/l1-peers.cpio), for the
	// benchmarks that run it next to govm as the peer.
	NeedPeers bool
	// Files are created in a scratch directory before govm starts (inside
	// L1 in nested mode); {dir} in Args and After names it.
	Files map[string][]byte
	// RootFiles are created at these paths (relative to /) in L1 in
	// nested mode, as files a host has installed (/lib/modules/...); in
	// direct mode the host's own are used.
	RootFiles map[string][]byte
	// L1Disk, if set, is a host file L1 sees read-only as its virtio disk
	// /dev/vda (nested mode; a disk image too large for L1's initramfs).
	// L1's kernel needs virtio_blk loaded (RootFiles and Before).
	L1Disk string
	// Before is a shell snippet run before govm starts, in the same place
	// as After (to make large disk images where they are used).
	Before string
	// Input is typed on govm's standard input once the console shows
	// InputAfter (a fixed string); without Input, stdin is /dev/null.
	Input      string
	InputAfter string
	// KillAfter, if set, kills govm with SIGKILL once the console shows
	// it (a fixed string); its exit code is then 137, as a shell reports.
	KillAfter string
	// GoPackages, if set, runs govm in this module's root with a go
	// command that can resolve these packages (go env, go list) on PATH:
	// the host's in direct mode; in nested mode a goTree carried into L1,
	// which resolves but cannot compile (for govm run --uroot).
	GoPackages []string
	// Env is added to govm's environment; {dir} names the scratch
	// directory.
	Env []string
	// After is a shell snippet run once govm has exited; its output is
	// part of Result.Output (in nested mode it runs inside L1, where the
	// files are).
	After string
}

// isGovmRun reports whether the case runs `govm run` (Command's default),
// which the harness gives --metrics and runCase a --timeout.
func (c Case) isGovmRun() bool {
	return c.Program == "" && (c.Command == "" || c.Command == "run")
}

// Result is what a case produced.
type Result struct {
	Output   string        // console: govm's and the guest's output
	GovmExit int           // govm's exit code
	BootTime time.Duration // govm's start to the guest agent's boot-timer write (--metrics), 0 if none
	Retries  int           // L1 crashes retried
	// NICs are govm's per-NIC counters (--metrics "nics"), raw JSON.
	NICs json.RawMessage
}

// metricsJSON is the part of govm's --metrics file the harness reads.
type metricsJSON struct {
	BootTimeMS float64         `json:"boot_time_ms"`
	NICs       json.RawMessage `json:"nics"`
}

func (r *Result) setMetrics(b []byte) {
	var m metricsJSON
	if json.Unmarshal(b, &m) != nil {
		return
	}
	r.NICs = m.NICs
	if m.BootTimeMS > 0 {
		r.BootTime = time.Duration(m.BootTimeMS * float64(time.Millisecond))
	}
}

// Marker reports the value of a GOVM-NAME=value line.
func (r *Result) Marker(name string) (string, bool) {
	// Kernel messages can interleave with the guest agent's lines, so the
	// value ends at the first character that cannot belong to it.
	re := regexp.MustCompile(`(?:^|[^A-Z-])` + regexp.QuoteMeta(name) + `=([A-Za-z0-9._-]+)`)
	m := re.FindStringSubmatch(r.Output)
	if m == nil {
		return "", false
	}
	return m[1], true
}
