// Command imgaudit audits VM images for secrets that outlive their owner's
// intent: in snapshots, backing files, free blocks, unreferenced clusters,
// saved RAM and container layers.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/imgaudit/imgaudit/internal/gctune"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes are a public contract (docs/report.md).
const (
	exitOK       = 0
	exitFindings = 1 // findings at or above --fail-on
	exitUsage    = 2
	// exitIncomplete: a target, view or backing file could not be read
	// completely (the gate fails closed), and no finding reached
	// --fail-on; exitIncompleteFindings: incomplete, and findings did.
	exitIncomplete         = 2
	exitIncompleteFindings = 3
	exitInterrupted        = 130
)

const usageText = `imgaudit audits VM images for secrets that persist where the guest no longer
controls them: internal snapshots, backing files, free filesystem blocks,
unreferenced qcow2 clusters, saved RAM and container layers.

Usage:
  imgaudit scan    [flags] TARGET...     scan images or directories for secrets
  imgaudit info    [flags] IMAGE...      show format, backing chain, snapshots and views
  imgaudit extract IMAGE --view ID -o FILE
                                         write one view's bytes (sparse) to FILE
  imgaudit registry [flags] REF...       scan container images in a registry (tags,
                                         digests, repositories with --all-tags)
  imgaudit merge   REPORT.json...        merge JSON reports (sharded scans)
  imgaudit rules   [flags]               list the detection rules
  imgaudit version                       print the version

Run 'imgaudit COMMAND --help' for the flags of a command.
Images are always opened read-only.
`

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	gctune.Tune()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	var (
		code int
		err  error
	)
	switch args[0] {
	case "scan":
		code, err = cmdScan(ctx, args[1:], stdout, stderr)
	case "info":
		code, err = cmdInfo(ctx, args[1:], stdout, stderr)
	case "extract":
		code, err = cmdExtract(ctx, args[1:], stdout, stderr)
	case "rules":
		code, err = cmdRules(ctx, args[1:], stdout, stderr)
	case "registry":
		code, err = cmdRegistry(ctx, args[1:], stdout, stderr)
	case "merge":
		code, err = cmdMerge(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "imgaudit %s\n", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "imgaudit: unknown command %q\nRun 'imgaudit --help' for usage.\n", args[0])
		return exitUsage
	}
	var ue usageError
	switch {
	case err == nil:
		return code
	case errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "imgaudit %s: %v\nRun 'imgaudit %s --help' for usage.\n", args[0], err, args[0])
		return exitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "imgaudit %s: interrupted\n", args[0])
		return exitInterrupted
	default:
		fmt.Fprintf(stderr, "imgaudit %s: %v\n", args[0], err)
		if code == exitOK {
			code = exitUsage
		}
		return code
	}
}
