package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/imgaudit/imgaudit/registry"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

func cmdRegistry(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("registry", "registry [flags] REF...",
		`Scan container images in OCI registries for secrets, layer by layer, and
report where each one persists: "live" in the image's merged filesystem, or
"layer" when a later layer deleted or replaced it (it still ships to everyone
who pulls the image). VM disk and memory images inside layers (KubeVirt
containerDisks under /disk/, disk images pushed as OCI artifacts) are audited
with the disk readers, with their own views and exposures.

A REF is a tag (registry.example.com/team/app:1.2), a digest (...@sha256:...)
or a repository (registry.example.com/team/app: its "latest" tag, or every
tag with --all-tags). Multi-platform indexes are scanned for every platform
unless --platform is given. Credentials come from the Docker config
(~/.docker/config.json, credential helpers), as for docker pull.

Nightly scans: --state FILE remembers the manifests and layers already
scanned (they are not pulled again; their earlier findings are reused) and
every secret already seen: findings get "new": true/false. --only-new keeps
only the new ones. Manifests and layers no run needed for --state-retention
(30 days) are forgotten, so the file follows the registry. --shard i/n
splits the repository list deterministically over n jobs; merge their JSON
reports with 'imgaudit merge'.

Exit codes: 0 no finding at or above --fail-on; 1 findings at or above it;
2 incomplete (an image, layer or disk in it could not be read completely,
or the run reached --max-time), a usage error, no image could be read, or
the report or the --state file could not be written (the state is saved
only after the report); 3 incomplete and findings at or above --fail-on;
130 interrupted (the report is still written, marked incomplete).`, stdout)
	rf := addReportFlags(fs, "also run memory-structure rules (AES key schedules, DER keys) on layer files")
	allTags := fs.Bool("all-tags", false, "scan every tag of each REF's repository")
	platform := fs.String("platform", "", "scan only this platform of multi-platform indexes (`os/arch[/variant]`)")
	plainHTTP := fs.Bool("plain-http", false, "talk plain HTTP to registries (labs, loopback)")
	timeout := fs.Duration("timeout", registry.DefaultTimeout, "timeout for connecting, for response headers and for a stalled blob download")
	retries := fs.Int("retries", registry.DefaultRetries, "retries of a request or a broken blob download on network errors (0 = none)")
	statePath := fs.String("state", "", "state `FILE` for scheduled scans: skip what was scanned before, mark findings new")
	onlyNew := fs.Bool("only-new", false, "with --state: report only findings not seen in earlier runs")
	retention := daysFlag(registry.DefaultStateRetention)
	fs.Var(&retention, "state-retention", "with --state: forget manifests no run scanned, and layers no run used, for this `DURATION` (30d, 720h; 0 keeps them all); seen secrets are kept")
	shard := fs.String("shard", "", "scan only shard `i/n` (0 <= i < n) of the repositories, split by a hash of the repository name")
	refsFile := fs.String("refs-file", "", "read more REFs from `FILE`, one per line (# comments)")
	tmpDir := fs.String("tmp-dir", "", "`DIR` for spooled disk images (default $TMPDIR)")
	maxSpool := fs.String("max-spool-size", "16G", "largest disk image spooled to --tmp-dir (`SIZE`, e.g. 4G); bigger ones are scanned as plain bytes")
	verbose := fs.Bool("v", false, "log each image and retried blob to standard error")
	refs, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if *refsFile != "" {
		more, err := readRefsFile(*refsFile)
		if err != nil {
			return exitUsage, usagef("--refs-file: %v", err)
		}
		refs = append(refs, more...)
	}
	if len(refs) == 0 {
		return exitUsage, usagef("no REF given")
	}
	threshold, known, err := rf.check()
	if err != nil {
		return exitUsage, err
	}
	ctx, cancel := scanner.WithMaxTime(ctx, rf.maxTime)
	defer cancel()
	out, err := checkOutput(rf.output, append(rf.readFiles(), *refsFile, *statePath))
	if err != nil {
		return exitUsage, err
	}
	spool, err := parseSize(*maxSpool)
	if err != nil {
		return exitUsage, usagef("--max-spool-size: %v", err)
	}
	if *onlyNew && *statePath == "" {
		return exitUsage, usagef("--only-new needs --state")
	}
	if *retries == 0 {
		*retries = -1 // registry.Options: negative means none
	}
	var nameOpts []name.Option
	if *plainHTTP {
		nameOpts = append(nameOpts, name.Insecure)
	}
	if *shard != "" {
		sh, err := registry.ParseShard(*shard)
		if err != nil {
			return exitUsage, usagef("--shard: %v", err)
		}
		refs = sh.Select(refs, nameOpts...)
	}
	engine, err := rf.engine()
	if err != nil {
		return exitUsage, err
	}
	var state *registry.State
	if *statePath != "" {
		if state, err = registry.LoadState(*statePath); err != nil {
			return exitUsage, err
		}
		for _, note := range state.LoadNotes() {
			fmt.Fprintf(stderr, "imgaudit registry: %s\n", note)
		}
	}
	opts := registry.Options{
		Engine: engine, MemoryRules: rf.memRules, PlainHTTP: *plainHTTP, Platform: *platform, AllTags: *allTags,
		Timeout: *timeout, Retries: *retries, TmpDir: *tmpDir, MaxSpoolSize: spool, State: state,
		Version: version, FailOn: rf.failOn, NoDowngrade: rf.noDowngrade, NoDecode: rf.noDecode, NoNestedImages: rf.noNested, DisableRules: rf.derived,
	}
	if *verbose {
		opts.Log = stderr
	}
	sc, err := registry.New(opts)
	if err != nil {
		return exitUsage, usagef("%v", err)
	}
	var rep *report.Report
	var scanErr error
	if len(refs) == 0 {
		// Every REF belongs to other shards: an empty, complete report.
		now := time.Now().UTC()
		rep = report.Merge(&report.Report{Complete: true, Started: now, Finished: now})
		rep.Tool, rep.Command, rep.FailOn = report.Tool{Name: "imgaudit", Version: version}, "registry", rf.failOn
	} else {
		rep, scanErr = sc.ScanRefs(ctx, refs)
	}
	if known != nil {
		report.SuppressBaseline(rep, known)
	}
	if *onlyNew {
		report.KeepOnlyNew(rep)
	}
	// The state is saved only once the report is written: saved first, a
	// run whose report failed (-o on a full disk) marked its findings
	// seen, and the next --only-new run reported none of them.
	var saveState func() error
	if state != nil {
		saveState = func() error {
			if retention > 0 {
				if m, b := state.Prune(time.Now().UTC(), time.Duration(retention)); (m > 0 || b > 0) && *verbose {
					fmt.Fprintf(stderr, "imgaudit: state: forgot %d manifests and %d blobs unused for %v\n", m, b, &retention)
				}
			}
			return state.Save("imgaudit " + version)
		}
	}
	return finishReport("registry", rep, rf, out, threshold, scanErr, saveState, stdout, stderr)
}

// readRefsFile reads REFs one per line; blank lines and # comments are
// skipped.
func readRefsFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var refs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line != "" {
			refs = append(refs, line)
		}
	}
	return refs, sc.Err()
}

// parseSize parses a byte count with an optional K, M, G or T suffix
// (powers of 1024; a trailing "iB" or "B" is accepted).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return v * mult, nil
}
