// Command genhostile writes the hostile inputs of package hostile (and the
// good target scanned beside them) into a directory, for manual trials:
//
//	go run ./internal/hostile/cmd/genhostile DIR [CASE...]
//
// With no CASE it writes every case. It prints one line per file, with the
// --backing-root flags to scan it with where the case has some. The cases
// that name host files plant them in CASE/host, beside CASE/images, which
// holds the target.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/imgaudit/imgaudit/internal/hostile"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: genhostile DIR [CASE...]")
		for _, c := range hostile.Cases() {
			fmt.Fprintf(os.Stderr, "  %-22s %s\n", c.Name, c.What)
		}
		os.Exit(2)
	}
	dir, want := os.Args[1], os.Args[2:]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail(err)
	}
	ctx := context.Background()
	good, err := hostile.Good(ctx, dir)
	if err != nil {
		fail(err)
	}
	fmt.Printf("%-22s %s\n", "good", good)
	for _, c := range hostile.Cases() {
		if len(want) > 0 && !slices.Contains(want, c.Name) {
			continue
		}
		sub := filepath.Join(dir, c.Name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			fail(err)
		}
		p, err := c.Make(ctx, sub)
		if err != nil {
			fail(fmt.Errorf("%s: %w", c.Name, err))
		}
		fmt.Printf("%-22s %s", c.Name, p)
		for _, r := range c.Roots {
			fmt.Printf(" --backing-root %s", r)
		}
		fmt.Println()
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "genhostile:", err)
	os.Exit(1)
}
