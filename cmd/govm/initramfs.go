package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/govm/govm/uroot"
)

func newInitramfsCmd(stdout, stderr io.Writer) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "initramfs -o FILE PACKAGE...",
		Short: "Build a u-root initramfs with Go commands, the first as uinit",
		Long: `Build a u-root initramfs (cpio) holding u-root's init and the given Go main
packages (import paths or directories such as ./cmd/mytest), compiled into one
busybox-style binary; u-root's init runs the first package as uinit. Needs a Go
toolchain. Images are cached by content under $XDG_CACHE_HOME/govm/initramfs,
so an unchanged build is a copy. 'govm run --uroot PACKAGE...' builds and boots
in one step.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("initramfs: name at least one Go package")}
			}
			if out == "" {
				return usageError{errors.New("initramfs: -o FILE is required")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := buildUroot(args, stderr)
			if err != nil {
				return err
			}
			if err := copyAtomic(res.Path, out); err != nil {
				return fmt.Errorf("-o %s: %w", out, err)
			}
			fmt.Fprintf(stdout, "%s (uinit %s)\n", out, res.Uinit)
			return nil
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "write the cpio archive here")
	return c
}

// buildUroot builds (or finds in the cache) the image for --uroot and
// govm initramfs; progress goes to log.
func buildUroot(pkgs []string, log io.Writer) (uroot.Result, error) {
	res, err := uroot.Build(context.Background(), uroot.Options{Packages: pkgs, Log: log})
	if err != nil {
		return res, fmt.Errorf("--uroot %s: %w", strings.Join(pkgs, ","), trimPrefix(err))
	}
	return res, nil
}

// trimPrefix drops the package's "uroot: " prefix where the flag names it.
type prefixTrimmed struct {
	msg string
	err error
}

func (e prefixTrimmed) Error() string { return e.msg }
func (e prefixTrimmed) Unwrap() error { return e.err }

func trimPrefix(err error) error {
	if m, ok := strings.CutPrefix(err.Error(), "uroot: "); ok {
		return prefixTrimmed{m, err}
	}
	return err
}

// copyAtomic copies src to dst through a temporary file in dst's
// directory, so dst is either the old file or the whole new one.
func copyAtomic(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return pe.Err
		}
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
