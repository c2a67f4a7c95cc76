package e2e

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashRounds is how many rounds must reach a verdict; crashAttempts
// bounds the rounds tried (the nested emulator spoils some boots). They
// are split over crashHosts hosts running side by side (in nested mode two
// L1 guests, each a single-threaded emulator on its own host CPU; a round
// there takes 20-60 s, and measured here about one in eight dies before
// its agent writes). The guest boots quiet: each byte of a boot log is an
// exit that the nested emulator makes slow.
const (
	crashRounds   = 20
	crashAttempts = 30
	crashHosts    = 2
)

// crashScript runs the rounds: each boots a guest that writes and fsyncs
// numbered records on a fresh disk (govm-agent's records action), kills
// govm with SIGKILL at a random moment 0-3 s after the writing starts, and
// checks on the disk file that every record the guest saw flushed is
// there. It prints one GOVM-ROUND line and the check's verdict per round,
// never a guest's console (which a spoiled boot fills with the emulator's
// fault, and which the harness would take as a spoiled L1).
const crashScript = `valid=0; round=0
while [ $valid -lt {rounds} ] && [ $round -lt {attempts} ]; do
	round=$((round + 1))
	start=$(date +%s)
	dd if=/dev/zero of={dir}/rec.img bs=1M count=8 2>/dev/null
	klog=$(dmesg 2>/dev/null | wc -l)
	govm run --kernel {bzImage} --initrd {initrd} --mem 256M --disk {dir}/rec.img \
		--append 'quiet govm.action=records' --timeout 60s </dev/null >{dir}/round.txt 2>&1 &
	pid=$!
	while kill -0 $pid 2>/dev/null && ! grep -q GOVM-RECORDS-WRITING {dir}/round.txt; do sleep 0.2; done
	ms=$(awk -v s="{seed}$round$$" 'BEGIN { srand(s); print int(rand() * 3000) }')
	sleep $((ms / 1000)).$(printf %03d $((ms % 1000)))
	kill -KILL $pid 2>/dev/null
	wait $pid
	rc=$?
	writing=0; grep -q GOVM-RECORDS-WRITING {dir}/round.txt && writing=1
	fault=0; grep -q 'stack guard page was hit' {dir}/round.txt && fault=1
	last=$(grep -o 'GOVM-FLUSHED [0-9]*' {dir}/round.txt | tail -n 1 | cut -d' ' -f2)
	[ -n "$last" ] || last=-1
	l1fault=0; dmesg 2>/dev/null | tail -n +$((klog + 1)) | grep -qE 'Out of memory|Killed process|Oops|BUG:|general protection|segfault' && l1fault=1
	echo "GOVM-ROUND {seed}-$round rc=$rc writing=$writing fault=$fault l1fault=$l1fault delay_ms=$ms flushed=$last secs=$(( $(date +%s) - start ))"
	govm-host checkrecs {dir}/rec.img $last
	if [ $writing -eq 0 ] && [ $rc -eq 137 ]; then
		tail -n 6 {dir}/round.txt | sed 's/^/GOVM-DIAG console: /'
		dmesg 2>/dev/null | tail -n +$((klog + 1)) | tail -n 12 | sed 's/^/GOVM-DIAG kernel: /'
	fi
	if [ $rc -eq 137 ] && [ $writing -eq 1 ]; then valid=$((valid + 1)); fi
done`

var roundLine = regexp.MustCompile(`GOVM-ROUND (\d+-\d+) rc=(\d+) writing=(\d) fault=(\d) l1fault=(\d) delay_ms=(\d+) flushed=(-?\d+) secs=(\d+)\s*\n(GOVM-RECS-(OK|BAD) -?\d+)?\s*((?:GOVM-DIAG .*\n)*)`)

// TestCrashConsistency: 20 rounds of a guest writing and flushing records
// while govm is killed with SIGKILL at a random moment: after each, every
// record the guest saw flushed (its fsync returned, so govm's fdatasync
// had) is intact in the disk file.
//
// $GOVM_CRASH_ROUNDS sets the rounds (make soak runs 100), with half as
// many again allowed for the emulator's spoiled ones.
func TestCrashConsistency(t *testing.T) {
	r := testRunner(t)
	rounds, attempts := crashRounds, crashAttempts
	if v, err := strconv.Atoi(os.Getenv("GOVM_CRASH_ROUNDS")); err == nil && v > 0 {
		rounds, attempts = v, v*3/2
	}
	outs := onHosts(t, r, crashHosts, func(h int) Case {
		script := strings.NewReplacer("{rounds}", strconv.Itoa(rounds/crashHosts),
			"{attempts}", strconv.Itoa(attempts/crashHosts), "{seed}", strconv.Itoa(h)).Replace(crashScript)
		return Case{Command: "version", After: script, Timeout: time.Duration(attempts/crashHosts) * 90 * time.Second}
	})
	if t.Failed() {
		return
	}
	valid, records, secs, faulted := 0, 0, 0, 0
	for _, m := range roundLine.FindAllStringSubmatch(strings.Join(outs, "\n"), -1) {
		rc, _ := strconv.Atoi(m[2])
		writing, fault, l1fault := m[3] == "1", m[4] == "1", m[5] == "1"
		delay, flushed, recs, verdict, diag := m[6], m[7], m[9], m[10], m[11]
		n, _ := strconv.Atoi(m[8])
		secs = max(secs, n)
		last, _ := strconv.Atoi(flushed)
		switch {
		case verdict != "OK":
			t.Errorf("round %s: records flushed by the guest are missing or wrong on the host (%q; killed %s ms into the writing, %d records flushed)",
				m[1], recs, delay, last+1)
		case rc == 137 && writing:
			// Killed while the guest was writing. A guest kernel the
			// emulator's fault killed before the kill still had its
			// flushed records acknowledged after govm's fdatasync: the
			// check holds the same, so it counts (and is reported).
			valid++
			records += last + 1
			if fault {
				faulted++
			}
		case fault && (rc == 32 || rc == 33 || rc == 34 || rc == 35):
			t.Logf("round %s: spoiled, the emulator's fault ended the guest before the kill (govm exit %d; its flushed records checked: %s)", m[1], rc, verdict)
		case rc == 35 && writing:
			// govm's --timeout came before the script's kill: the guest
			// reached its writing only near the end of the 60 s (the
			// emulator ran that slowly; CI met it once, the same run's
			// longest round took 66 s). Its flushed records were
			// checked above all the same; the round just was not killed.
			t.Logf("round %s: spoiled, govm's timeout came before the kill (records flushed by then checked: %s)", m[1], verdict)
		case rc == 137 && !writing:
			// SIGKILL before the guest wrote, and not from the script
			// (which kills only once the guest writes or govm is gone):
			// govm never exits so by itself, so its host's kernel (L1's,
			// nested) killed it. Seen once in CI; the kernel's log of
			// the round and govm's console are kept here to tell why.
			// No record was at stake.
			why := "no fault in the kernel's log"
			if l1fault {
				why = "the kernel reported a fault or ran out of memory"
			}
			t.Logf("round %s: spoiled, govm was killed before the guest wrote (%s):\n%s", m[1], why, diag)
		default:
			t.Errorf("round %s: govm exited %d on its own (guest writing: %v)\n%s", m[1], rc, writing, diag)
		}
	}
	t.Logf("%d rounds killed while writing (%d of them after the emulator's fault hit the guest kernel), %d flushed records checked (longest round %d s)", valid, faulted, records, secs)
	if !t.Failed() && valid < rounds {
		t.Skipf("only %d of %d rounds reached a verdict within %d attempts (the rest spoiled by the emulator)", valid, rounds, attempts)
	}
}

// onHosts runs the case caseFor(h) gives for each of n hosts side by side (in
// nested mode n L1 guests, as the runner's slots allow) and returns each
// host's output; a host whose run failed fails t and leaves "".
func onHosts(t testing.TB, r *Runner, n int, caseFor func(h int) Case) []string {
	outs := make([]string, n)
	var wg sync.WaitGroup
	for h := range n {
		c := caseFor(h)
		wg.Go(func() {
			res, err := r.Run(t.Context(), c)
			if err != nil {
				out := ""
				if res != nil {
					out = tail(res.Output, 40)
				}
				t.Errorf("host %d: %v\n%s", h, err, out)
				return
			}
			outs[h] = res.Output
		})
	}
	wg.Wait()
	return outs
}
