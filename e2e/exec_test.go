package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// execRetry defines the shell functions evidence and retry, shared by
// the exec scripts.
const execRetry = `
# evidence NAME RC: the nested emulator's signature in a govm exec that
# failed with RC (its console log $D/NAME.console, stderr $D/NAME.err),
# or nothing: its page fault recursion on the console, or at a timeout a
# single vCPU spinning with an interrupt in service and interrupts off
# (docs/nested-tcg-fault.md). Said with dashes: the harness retries a
# whole case whose output holds the signature itself.
evidence() {
	case $2 in 33|34|35) ;; *) return ;; esac
	ev=$(grep -h -m1 -o '[A-Z_]* *stack guard page was hit' "$D/$1.console" 2>/dev/null | tr ' ' -)
	if [ -z "$ev" ] && [ $2 = 35 ] && grep -q ' if=0 runnable;.* isr 0x.*f3 90 <' "$D/$1.err" 2>/dev/null; then
		ev="masked-interrupt-deadlock"
	fi
	echo $ev
}
# retry NAME CMD...: run CMD (a govm exec as evidence reads it) again, up
# to 3 times, only on the emulator's evidence; each retry is said with it.
retry() {
	name=$1; shift
	for attempt in 1 2 3; do
		"$@"; rc=$?
		ev=$(evidence $name $rc)
		[ -n "$ev" ] && { echo "EXEC-RETRY $name attempt=$attempt rc=$rc evidence=$ev"; continue; }
		break
	done
	return $rc
}
`

// execScript runs govm exec the ways a user does, one VM each, and
// reports each run as "EXEC name key=value" lines. $1 is the kernel, $D
// the scratch directory, $MODFLAGS how govm finds the modules.
const execScript = `
set -u
K=$1
mkdir -p $D/work $D/ro
echo data > $D/ro/f
chmod +x $D/exectest.test
cd $D/work
` + execRetry + `
once() {
	name=$1; shift
	govm exec --kernel "$K" --timeout 150s --console-log "$D/$name.console" $MODFLAGS "$@" \
		>"$D/$name.out" 2>"$D/$name.err" <"${STDIN:-/dev/null}"
}
run() {
	retry $1 once "$@"
	echo "EXEC $1 rc=$?"
}
run uname -- uname -r
echo "EXEC uname out=$(cat $D/uname.out)"
run true -- sh -c true
run exit7 -- sh -c 'exit 7'
run false -- sh -c false
run missing -- no-such-command-xyz
echo "EXEC missing err=$(cat $D/missing.err)"
run signal -- sh -c 'kill -TERM $$'
run streams -- sh -c 'echo to-stdout; echo to-stderr >&2'
echo "EXEC streams out=$(cat $D/streams.out) err=$(cat $D/streams.err)"
head -c 10485760 /dev/urandom > $D/big
run big -- cat $D/big
echo "EXEC big want=$(govm-host sum $D/big) got=$(govm-host sum $D/big.out)"
echo hello-stdin > $D/in
STDIN=$D/in run stdin -- cat
echo "EXEC stdin out=$(cat $D/stdin.out)"
run writes -- sh -c 'echo outside > /etc/govm-outside && echo inside > inside.txt && cat /etc/govm-outside'
echo "EXEC writes guest=$(cat $D/writes.out) host-outside=$(cat /etc/govm-outside 2>/dev/null || echo absent) host-inside=$(cat $D/work/inside.txt)"
run ro --share $D/ro:data,ro -- sh -c "cat $D/ro/f && echo x > $D/ro/new"
echo "EXEC ro out=$(cat $D/ro.out) files=$(ls $D/ro | tr '\n' ' ')"
run gopass -- $D/exectest.test -test.run TestPass
run gofail -- $D/exectest.test -test.run TestFail
echo "EXEC gofail out=$(grep -c 'fails on purpose' $D/gofail.out)"
# As go test -exec runs it: the binary in go's build directory under the
# host's /tmp (a mount of its own in L1), go's flags, the package's
# directory as the working directory.
mkdir -p /tmp/go-build4242/b001 $D/pkg
cp $D/exectest.test /tmp/go-build4242/b001/exectest.test
( cd $D/pkg && run gotestexec -- /tmp/go-build4242/b001/exectest.test -test.paniconexit0 -test.timeout=10m0s -test.v=true -test.run TestPass )
echo "EXEC gotestexec out=$(grep -c '^--- PASS: TestPass' $D/gotestexec.out)"
# As a user who may open /dev/kvm and nothing else (in L1 only: this
# adds a user to /etc/passwd).
if [ "$NESTED" = 1 ]; then
chmod 0666 /dev/kvm
mkdir -p $D/user && chown 1234:1234 $D/user
grep -q '^root:' /etc/passwd 2>/dev/null || echo 'root:x:0:0::/root:/bin/sh' >> /etc/passwd
echo "tester:x:1234:1234::$D/user:/bin/sh" >> /etc/passwd
echo 'tester:x:1234:' >> /etc/group
userrun() {
	su tester -c "cd $D/user && govm exec --kernel $K --timeout 150s --console-log $D/user.console $MODFLAGS -- sh -c 'id -u; id -g; echo made > mine'" >$D/user.out 2>$D/user.err
}
retry user userrun; echo "EXEC user rc=$?"
echo "EXEC user out=$(cat $D/user.out | tr '\n' ' ')owner=$(stat -c %u:%g $D/user/mine)"
fi
ptyrun() { govm-host pty 'tty; stty size; exit 3\n' govm exec --kernel "$K" --timeout 150s --console-log $D/pty.console $MODFLAGS -- sh > $D/pty.out 2>$D/pty.err; }
retry pty ptyrun
echo "EXEC pty tty=$(grep -c '^/dev/pts/' $D/pty.out) size=$(grep -c '^30 100' $D/pty.out) $(grep -o 'exit=[0-9]*' $D/pty.out)"
exit 0
`

// TestExec runs host commands in fresh VMs with govm exec: the guest
// kernel's release, exit codes and signals, separate byte-exact streams,
// stdin, writes kept from the host but for the working directory, a
// read-only share, a Go test binary built on the host (also run as go
// test -exec runs it), a pty, and a user who may open /dev/kvm and
// nothing else.
func TestExec(t *testing.T) {
	r := testRunner(t)
	bin := buildExecTest(t)
	c := Case{
		Program: "sh", Args: []string{"{dir}/exec.sh", "{bzImage}"}, Timeout: 20 * time.Minute,
		Files: map[string][]byte{"exectest.test": bin, "exec.sh": []byte(execScript)},
		Env:   []string{"D={dir}", "NESTED=0"},
	}
	if r.Mode == Nested {
		c.Env[1] = "NESTED=1"
	}
	release := withGuestModules(t, r, &c)
	res := runCase(t, r, c, 0)
	if retries := regexp.MustCompile(`(?m)^EXEC-RETRY .*$`).FindAllString(res.Output, -1); len(retries) > 0 {
		t.Logf("%d runs retried on the nested emulator's evidence:\n%s", len(retries), strings.Join(retries, "\n"))
	}
	got := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^EXEC (\S+) (.*)$`).FindAllStringSubmatch(res.Output, -1) {
		got[m[1]] += m[2] + "\n"
	}
	for _, c := range []struct{ name, want string }{
		{"uname", "rc=0\nout=" + release + "\n"},
		{"true", "rc=0\n"},
		{"exit7", "rc=7\n"},
		{"false", "rc=1\n"},
		{"missing", "rc=127\nerr=govm: no-such-command-xyz: command not found\n"},
		{"signal", "rc=143\n"},
		{"streams", "rc=0\nout=to-stdout err=to-stderr\n"},
		{"stdin", "rc=0\nout=hello-stdin\n"},
		{"writes", "rc=0\nguest=outside host-outside=absent host-inside=inside\n"},
		{"ro", "rc=1\nout=data files=f \n"},
		{"gopass", "rc=0\n"},
		{"gofail", "rc=1\nout=1\n"},
		{"pty", "tty=1 size=1 exit=3\n"},
		{"gotestexec", "rc=0\nout=1\n"},
		{"user", "rc=0\nout=1234 1234 owner=1234:1234\n"},
	} {
		if c.name == "user" && r.Mode != Nested {
			t.Log("the unprivileged run is nested only: it adds a user to /etc/passwd")
			continue
		}
		if got[c.name] != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got[c.name], c.want)
		}
	}
	if m := regexp.MustCompile(`(?m)^EXEC big rc=0\nEXEC big want=(\S+) got=(\S+)$`).FindStringSubmatch(res.Output); m == nil || m[1] != m[2] {
		t.Errorf("10 MiB through stdout: %q", m)
	}
	if t.Failed() {
		t.Logf("output:\n%s", res.Output)
	}
}

// withGuestModules gives govm exec in case c the guest kernel's modules
// and returns its release: in nested mode installed in L1 as a host has
// them (govm finds them by release), in direct mode through $MODFLAGS
// (--modules), which the case's script passes on.
func withGuestModules(t *testing.T, r *Runner, c *Case) string {
	t.Helper()
	rel, err := os.ReadFile(filepath.Join(r.Assets.Dir, "kernel/version"))
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimSpace(string(rel))
	mods := filepath.Join(r.Assets.Dir, "kernel/lib-modules", release)
	if r.Mode == Nested {
		if c.RootFiles, err = installedModules(mods, release); err != nil {
			t.Fatal(err)
		}
		c.Env = append(c.Env, "MODFLAGS=")
	} else {
		c.Env = append(c.Env, "MODFLAGS=--modules "+mods)
	}
	return release
}

// installedModules are the files of the modules directory mods as L1
// should hold them, under lib/modules/RELEASE.
func installedModules(mods, release string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(mods, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rp, _ := filepath.Rel(mods, p)
		files[filepath.Join("lib/modules", release, rp)] = b
		return err
	})
	return files, err
}

// buildExecTest builds testdata/exectest with go test -c, static, and
// checks it passes and fails on the host as it must in the guest.
func buildExecTest(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "exectest.test")
	cmd := exec.Command("go", "test", "-c", "-o", out, "./testdata/exectest")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v\n%s", err, b)
	}
	for _, c := range []struct {
		run  string
		code int
	}{{"TestPass", 0}, {"TestFail", 1}} {
		err := exec.Command(out, "-test.run", c.run).Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != c.code {
			t.Fatalf("on the host, %s exits %d (%v), want %d", c.run, code, err, c.code)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
