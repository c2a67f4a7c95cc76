package machine_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/govm/govm/boot"
	"github.com/govm/govm/machine"
)

// Example boots a Linux kernel and initramfs with 2 vCPUs and 512 MiB
// through the Go API, as a test of one's own would, and reports how the
// guest ended and what it printed. (It is compiled, not run: it needs a
// kernel and a host whose KVM runs Linux; the end-to-end tests run the
// same through govm.)
func Example() {
	kernel, err := os.Open("build/kernel/bzImage")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer kernel.Close()
	initrd, err := os.Open("build/uroot.cpio")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer initrd.Close()
	ks, _ := kernel.Stat()
	is, _ := initrd.Stat()

	var console bytes.Buffer
	m, err := machine.New(machine.Config{
		MemSize: 512 << 20,
		CPUs:    2,
		Console: &console,
		Boot: boot.Config{
			Kernel: kernel, KernelSize: ks.Size(),
			Initrd: initrd, InitrdSize: is.Size(),
			Cmdline: "console=ttyS0 panic=-1 govm.action=poweroff",
		},
	})
	if err != nil {
		fmt.Println(err) // no /dev/kvm, no permission, bad kernel...
		return
	}
	defer m.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := m.Run(ctx)
	switch res.Reason {
	case machine.StopPoweroff:
		fmt.Println("the guest powered off")
	case machine.StopCanceled:
		fmt.Println("timed out; where the guest was:")
		for _, l := range res.State {
			fmt.Println(" ", l)
		}
	default:
		fmt.Println("the guest ended:", res.Detail)
	}
	fmt.Print(console.String())
}
