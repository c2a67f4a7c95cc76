// Command govm-net serves govm's user-mode networks (--net user): govm
// starts it, one process per network or switch, and it ends with the
// network's last VM. It is a program of its own so that govm, and the
// govm exec image that carries govm, hold none of the network stack.
package main

import (
	"fmt"
	"os"

	"github.com/govm/govm/usernet"
	"github.com/govm/govm/usernet/server"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != usernet.HelperArg {
		fmt.Fprintln(os.Stderr, "govm-net serves govm's user networks; govm starts it for --net user")
		os.Exit(2)
	}
	os.Exit(server.Main(os.Args[2:]))
}
