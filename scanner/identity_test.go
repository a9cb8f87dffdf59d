package scanner_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// Two VMs cloned from one base image keep the base's SSH host key, BIND
// rndc key and machine-id: the scan must report them once, as cloned
// identity across both VMs, with the base read once.
func TestClonedIdentityAcrossVMs(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io", "mkfs.ext4", "ssh-keygen")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(root, "etc/ssh/ssh_host_ed25519_key")
	testutil.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "base", "-f", key)
	if err := os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("4c6f1a2b3c4d5e6f708192a3b4c5d6e7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// bind9's install writes /etc/bind/rndc.key with rndc-confgen -a: a
	// TSIG key that controls the name server, the same in every clone.
	if err := os.MkdirAll(filepath.Join(root, "etc/bind"), 0o755); err != nil {
		t.Fatal(err)
	}
	tsig := make([]byte, 32)
	rand.Read(tsig)
	if err := os.WriteFile(filepath.Join(root, "etc/bind/rndc.key"), []byte("key \"rndc-key\" {\n\talgorithm hmac-sha256;\n\tsecret \""+base64.StdEncoding.EncodeToString(tsig)+"\";\n};\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "images")
	os.Mkdir(store, 0o755)
	base := filepath.Join(store, "base.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", root, base, "8M")
	for _, vm := range []string{"vm1", "vm2"} {
		img := filepath.Join(store, vm+".qcow2")
		testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "base.raw", img)
		testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write -q -P 0x5a 7M 64k", img)
	}

	rep, err := scanner.New(scanner.Options{Engine: newEngine(t)}).Scan(context.Background(), []string{store})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Targets) != 2 {
		t.Fatalf("targets = %d, want the two overlays only (base is their backing file)", len(rep.Targets))
	}
	wantFP := fp(pemBlock(t, key))
	kinds := map[string][]string{}
	for _, s := range rep.SharedIdentity {
		kinds[s.Kind] = s.VMs
		if s.Kind == "ssh-host-key" && s.Fingerprint != wantFP {
			t.Errorf("shared host key fingerprint %s, want %s", s.Fingerprint, wantFP)
		}
	}
	for _, k := range []string{"ssh-host-key", "tsig-key", "machine-id"} {
		if !slices.Equal(kinds[k], []string{"vm1", "vm2"}) {
			t.Errorf("shared %s VMs = %v, want [vm1 vm2]; shared identity %+v", k, kinds[k], rep.SharedIdentity)
		}
	}
	clones := 0
	for _, f := range rep.Findings {
		if f.Category == report.CategoryClonedIdentity {
			clones++
		}
	}
	if clones != 3 {
		t.Errorf("cloned-identity findings = %d, want 3 (host key, rndc key, machine-id)", clones)
	}
	// The base's bytes are scanned once, not once per overlay: both VMs
	// cost little more than one.
	one, err := scanner.New(scanner.Options{Engine: newEngine(t)}).Scan(context.Background(), []string{filepath.Join(store, "vm1.qcow2")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bytes scanned: vm1 alone %d, both VMs %d", one.Summary.ScannedBytes, rep.Summary.ScannedBytes)
	if rep.Summary.ScannedBytes > one.Summary.ScannedBytes*3/2 {
		t.Errorf("two overlays cost %d bytes, one costs %d: the shared base was read again", rep.Summary.ScannedBytes, one.Summary.ScannedBytes)
	}
	// Per host file: the shared base is planned once, not once per clone.
	var baseAlloc int64
	for _, tg := range rep.Targets {
		for _, v := range tg.Views {
			if v.Kind == "backing" {
				baseAlloc = v.AllocatedBytes
			}
		}
	}
	var basePlanned int64
	for f, n := range rep.Summary.ScannedBytesByFile {
		if filepath.Base(f) == "base.raw" {
			basePlanned = n
		}
	}
	t.Logf("base.raw: %d bytes allocated, %d planned for scanning", baseAlloc, basePlanned)
	if basePlanned < baseAlloc*9/10 || basePlanned > baseAlloc*13/10 {
		t.Errorf("base.raw planned %d bytes for %d allocated: want about once", basePlanned, baseAlloc)
	}
	if len(rep.Timelines) != 2 || rep.Timelines[0].Points[len(rep.Timelines[0].Points)-1].Kind != "current" {
		t.Errorf("timelines = %+v", rep.Timelines)
	}
}
