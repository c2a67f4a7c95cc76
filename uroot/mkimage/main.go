// Command mkimage is govm's u-root image builder: it runs u-root's
// mkuimage Go API in a process of its own, so that govm's binary does not
// carry mkuimage and its dependencies (linked in, they doubled govm's size
// and the memory of every VM it runs). Package uroot embeds this file,
// builds it with the user's Go toolchain and runs it; it reads one JSON
// request on stdin and writes the image. Its go list and go build calls
// see the environment it runs in (GOWORK, set by package uroot).
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// request is what package uroot asks for (the same fields there).
type request struct {
	Dirs    []string // command directories; u-root's init first
	Uinit   string   // the command linked as /bin/uinit
	Output  string   // the cpio archive to write
	TempDir string   // scratch space for the build
	WorkDir string   // where packages resolve
	GOROOT  string
	GoBin   string // the go command
	GOOS    string
	GOARCH  string
}

func main() {
	var r request
	if err := json.NewDecoder(os.Stdin).Decode(&r); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage: reading the request:", err)
		os.Exit(2)
	}
	if err := build(r); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func build(r request) error {
	env := golang.Default(golang.DisableCGO(), golang.WithGOOS(r.GOOS), golang.WithGOARCH(r.GOARCH),
		golang.WithWorkingDir(r.WorkDir), golang.WithGOROOT(r.GOROOT), golang.WithCompiler(r.GoBin))
	var msgs strings.Builder
	l := llog.New(slog.LevelWarn, func(format string, args ...any) {
		fmt.Fprintf(&msgs, format+"\n", args...)
	})
	err := uimage.Create(l,
		uimage.WithReplaceEnv(env),
		uimage.WithBaseArchive(uimage.DefaultRamfs()),
		uimage.WithTempDir(r.TempDir),
		uimage.WithBusyboxCommands(r.Dirs...),
		uimage.WithInit("init"),
		uimage.WithUinit(r.Uinit),
		uimage.WithCPIOOutput(r.Output),
	)
	if err != nil {
		if m := strings.TrimSpace(msgs.String()); m != "" {
			return fmt.Errorf("%w (%s)", err, strings.ReplaceAll(m, "\n", "; "))
		}
		return err
	}
	return nil
}
