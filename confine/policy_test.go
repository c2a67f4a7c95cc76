package confine

import (
	"encoding/binary"
	"testing"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// auditArchX86_64 is AUDIT_ARCH_X86_64, seccomp_data.arch on amd64.
const auditArchX86_64 = 0xc000003e

// evaluate runs the policy's BPF program on one call as the kernel would
// (struct seccomp_data: nr, arch, instruction pointer, six arguments)
// and returns the action. x/net/bpf's VM loads words big-endian, so each
// 32-bit field is laid out so.
func evaluate(t *testing.T, p seccomp.Policy, nr uint32, args ...uint64) seccomp.Action {
	t.Helper()
	insts, err := p.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	be := binary.BigEndian
	be.PutUint32(data[0:], nr)
	be.PutUint32(data[4:], auditArchX86_64)
	for i, a := range args {
		// seccomp_data.args[i] is a little-endian u64: its low word first.
		be.PutUint32(data[16+8*i:], uint32(a))
		be.PutUint32(data[16+8*i+4:], uint32(a>>32))
	}
	ret, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return seccomp.Action(uint32(ret) & 0xffff0000)
}

// TestPolicyDecides: the assembled filter allows what the table lists,
// with the argument values it names, and traps the rest.
func TestPolicyDecides(t *testing.T) {
	p := Policy(Kill)
	// The flags Go's runtime passes (runtime/os_linux.go, and CLONE_SETTLS
	// added in sys_linux_amd64.s).
	goClone := uint64(unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_SYSVSEM |
		unix.CLONE_THREAD | unix.CLONE_SETTLS)
	for _, tt := range []struct {
		name string
		nr   uint32
		args []uint64
		want seccomp.Action
	}{
		{"write", unix.SYS_WRITE, nil, seccomp.ActionAllow},
		{"futex", unix.SYS_FUTEX, nil, seccomp.ActionAllow},
		{"getegid (last unconditional)", unix.SYS_GETEGID, nil, seccomp.ActionAllow},
		{"clone a thread", unix.SYS_CLONE, []uint64{goClone}, seccomp.ActionAllow},
		{"clone a process", unix.SYS_CLONE, []uint64{uint64(unix.SIGCHLD)}, seccomp.ActionTrap},
		{"clone a process sharing memory (vfork-like)", unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD)}, seccomp.ActionTrap},
		{"clone3", unix.SYS_CLONE3, nil, seccomp.ActionTrap},
		{"ioctl KVM_RUN", unix.SYS_IOCTL, []uint64{3, 0xae80}, seccomp.ActionAllow},
		{"ioctl TCSETS", unix.SYS_IOCTL, []uint64{0, unix.TCSETS}, seccomp.ActionAllow},
		{"ioctl KVM_CREATE_VM", unix.SYS_IOCTL, []uint64{3, 0xae01}, seccomp.ActionTrap},
		{"ioctl KVM_RUN with high bits", unix.SYS_IOCTL, []uint64{3, 1<<32 | 0xae80}, seccomp.ActionTrap},
		{"socket", unix.SYS_SOCKET, nil, seccomp.ActionTrap},
		{"execve", unix.SYS_EXECVE, nil, seccomp.ActionTrap},
		{"ptrace", unix.SYS_PTRACE, nil, seccomp.ActionTrap},
	} {
		if got := evaluate(t, p, tt.nr, tt.args...); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
