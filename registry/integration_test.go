package registry

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// realRegistry starts Debian's docker-registry on 127.0.0.1
// (testutil.DockerRegistry).
func realRegistry(t *testing.T) string { return testutil.DockerRegistry(t) }

// countingProxy is a reverse proxy in front of a registry that counts blob
// downloads (GET .../blobs/...).
type countingProxy struct {
	host     string
	blobGets atomic.Int64
}

func newCountingProxy(t *testing.T, registryHost string) *countingProxy {
	t.Helper()
	u, _ := url.Parse("http://" + registryHost)
	rp := httputil.NewSingleHostReverseProxy(u)
	cp := &countingProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			cp.blobGets.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cp.host = strings.TrimPrefix(srv.URL, "http://")
	return cp
}

// ext4Disk builds an ext4 filesystem image with mkfs.ext4 -d holding a live
// file and a file deleted with debugfs (blocks freed, not wiped), converted
// to format (qcow2 or raw) with qemu-img.
func ext4Disk(t *testing.T, format, live, deleted string) []byte {
	t.Helper()
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "qemu-img")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for p, body := range map[string]string{
		"etc/app/live.env":  "NPM_TOKEN=" + live + "\n",
		"root/deleted.conf": "//registry.npmjs.org/:_authToken=" + deleted + "\n",
		"etc/hostname":      "vm01\n",
	} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fsImg := filepath.Join(dir, "fs.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0", "-d", root, fsImg, "8M")
	testutil.Run(t, "debugfs", "-w", "-R", "rm /root/deleted.conf", fsImg)
	out := filepath.Join(dir, "disk."+format)
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", format, fsImg, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRealRegistry runs the acceptance scenarios against a real registry.
func TestRealRegistry(t *testing.T) {
	host := realRegistry(t)
	sec := testSecrets(t)
	ctx := context.Background()

	t.Run("whiteout deletes npmrc and ssh key", func(t *testing.T) {
		l0 := layer(t, "", dir("root/"), file("root/.npmrc", "//registry.npmjs.org/:_authToken="+sec.npm+"\n"),
			dir("root/.ssh/"), file("root/.ssh/id_rsa", sec.rsaPEM), file("usr/bin/app", "binary\n"))
		l1 := layer(t, "", whiteout("root/.npmrc"), whiteout("root/.ssh/id_rsa"), file("etc/os-release", "ID=test\n"))
		push(t, host+"/secure/app:1.0", imageOf(t, l0, l1))
		s := newScanner(t, Options{PlainHTTP: true})
		rep, err := s.ScanRefs(ctx, []string{host + "/secure/app:1.0"})
		if err != nil {
			t.Fatal(err)
		}
		by := findingsByFP(rep)
		for name, secret := range map[string]string{"npm token": sec.npm, "ssh key": sec.rsaPEM} {
			f := by[fp(secret)]
			if f == nil {
				t.Fatalf("%s not found (%d findings)", name, len(rep.Findings))
			}
			if strings.Join(f.Exposure, ",") != report.ExposureLayer {
				t.Errorf("%s: exposure %v, want [layer]", name, f.Exposure)
			}
			for _, l := range f.Locations {
				if l.LayerDigest != layerDigest(t, l0) || *l.LayerIndex != 0 {
					t.Errorf("%s: layer %s #%d, want %s #0", name, l.LayerDigest, *l.LayerIndex, layerDigest(t, l0))
				}
			}
		}
		assertNoLeak(t, rep, sec.npm, sec.rsaPEM)
	})

	t.Run("containerDisk with live and deleted secrets", func(t *testing.T) {
		for _, format := range []string{"qcow2", "raw"} {
			t.Run(format, func(t *testing.T) {
				live, deleted := npmToken(t), npmToken(t)
				disk := ext4Disk(t, format, live, deleted)
				diskPath := "disk/disk." + map[string]string{"qcow2": "qcow2", "raw": "img"}[format]
				l := layer(t, "", dir("disk/"), entry{name: diskPath, body: disk})
				ref := host + "/kubevirt/vm-" + format + ":latest"
				push(t, ref, imageOf(t, l))
				s := newScanner(t, Options{PlainHTTP: true})
				rep, err := s.ScanRefs(ctx, []string{ref})
				if err != nil {
					t.Fatal(err)
				}
				by := findingsByFP(rep)
				for tok, want := range map[string]string{live: report.ExposureLive, deleted: report.ExposureDeleted} {
					f := by[fp(tok)]
					if f == nil {
						t.Fatalf("%s secret not found; targets %+v", want, rep.Targets)
					}
					if !containsStr(f.Exposure, want) {
						t.Errorf("exposure %v, want %s", f.Exposure, want)
					}
					for _, loc := range f.Locations {
						if !strings.HasSuffix(loc.Target, "!/"+diskPath) || loc.LayerDigest != layerDigest(t, l) {
							t.Errorf("location target %q layer %q", loc.Target, loc.LayerDigest)
						}
					}
				}
				if len(rep.Targets) != 2 || !strings.HasSuffix(rep.Targets[1].Path, "!/"+diskPath) {
					t.Errorf("targets: %+v", rep.Targets)
				}
				assertNoLeak(t, rep, live, deleted)
			})
		}
	})

	t.Run("disk image pushed as an OCI artifact", func(t *testing.T) {
		live, deleted := npmToken(t), npmToken(t)
		disk := ext4Disk(t, "qcow2", live, deleted)
		art, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
			Layer:       static.NewLayer(disk, "application/vnd.example.disk.qcow2"),
			Annotations: map[string]string{"org.opencontainers.image.title": "vm.qcow2"},
		})
		if err != nil {
			t.Fatal(err)
		}
		art = mutate.ConfigMediaType(art, "application/vnd.example.disk.config.v1+json")
		push(t, host+"/artifacts/vm:1", art)
		s := newScanner(t, Options{PlainHTTP: true})
		rep, err := s.ScanRefs(ctx, []string{host + "/artifacts/vm:1"})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Targets[0].Format != "oci-artifact" || len(rep.Targets) != 2 || !strings.HasSuffix(rep.Targets[1].Path, "!/vm.qcow2") {
			t.Fatalf("targets %+v", rep.Targets)
		}
		by := findingsByFP(rep)
		for tok, want := range map[string]string{live: report.ExposureLive, deleted: report.ExposureDeleted} {
			if f := by[fp(tok)]; f == nil || !containsStr(f.Exposure, want) {
				t.Errorf("want %s, got %+v", want, f)
			}
		}
	})

	t.Run("all tags twice with state", func(t *testing.T) {
		proxy := newCountingProxy(t, host)
		base := layer(t, "", file("etc/base.conf", "_authToken="+npmToken(t)+"\n"))
		for i, tag := range []string{"v1", "v2", "v3"} {
			top := layer(t, "", file(fmt.Sprintf("app/%d.env", i), "NPM_TOKEN="+npmToken(t)+"\n"))
			push(t, host+"/estate/svc:"+tag, imageOf(t, base, top))
		}
		state := filepath.Join(t.TempDir(), "state.json")
		run := func() *report.Report {
			st, err := LoadState(state)
			if err != nil {
				t.Fatal(err)
			}
			s := newScanner(t, Options{PlainHTTP: true, AllTags: true, State: st})
			rep, err := s.ScanRefs(ctx, []string{proxy.host + "/estate/svc"})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Save("test"); err != nil {
				t.Fatal(err)
			}
			return rep
		}
		first := run()
		firstGets := proxy.blobGets.Load()
		if len(first.Targets) != 3 || len(findingsByFP(first)) != 4 {
			t.Fatalf("first run: %d targets, %d secrets; want 3, 4", len(first.Targets), len(findingsByFP(first)))
		}
		// 4 layers (one shared) + 3 configs, each pulled once.
		if firstGets != 7 {
			t.Errorf("first run pulled %d blobs, want 7 (the shared base layer once)", firstGets)
		}
		for _, f := range first.Findings {
			if f.New == nil || !*f.New {
				t.Errorf("first run: finding not marked new")
			}
		}
		second := run()
		if got := proxy.blobGets.Load() - firstGets; got != 0 {
			t.Errorf("second run pulled %d blobs, want 0", got)
		}
		if len(second.Findings) != len(first.Findings) {
			t.Errorf("second run: %d findings, want %d (reused from the state)", len(second.Findings), len(first.Findings))
		}
		for _, f := range second.Findings {
			if f.New == nil || *f.New {
				t.Errorf("second run: finding %s marked new", f.Rule)
			}
		}
	})

	t.Run("multi-arch index", func(t *testing.T) {
		amd, arm := npmToken(t), npmToken(t)
		mk := func(tok string) v1.Image { return imageOf(t, layer(t, "", file("etc/npmrc", "_authToken="+tok+"\n"))) }
		idx := mutate.AppendManifests(empty.Index,
			mutate.IndexAddendum{Add: mk(amd), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
			mutate.IndexAddendum{Add: mk(arm), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		)
		pushIndex(t, host+"/multi/arch:2", idx)
		s := newScanner(t, Options{PlainHTTP: true})
		rep, err := s.ScanRefs(ctx, []string{host + "/multi/arch:2", host + "/does/not-exist:1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Targets) != 3 || rep.Summary.TargetsFailed != 1 {
			t.Fatalf("targets %d failed %d, want 3 and 1", len(rep.Targets), rep.Summary.TargetsFailed)
		}
		platforms := map[string]bool{}
		for _, tg := range rep.Targets {
			platforms[tg.Platform] = true
		}
		if !platforms["linux/amd64"] || !platforms["linux/arm64"] {
			t.Errorf("platforms %v", platforms)
		}
		by := findingsByFP(rep)
		if by[fp(amd)] == nil || by[fp(arm)] == nil {
			t.Errorf("tokens of both platforms expected")
		}
	})
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// assertNoLeak writes the report in every format and checks that no secret
// value (nor any line of a PEM body) appears in it.
func assertNoLeak(t *testing.T, rep *report.Report, secrets ...string) {
	t.Helper()
	var outs [3]bytes.Buffer
	if err := report.WriteJSON(&outs[0], rep); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteTable(&outs[1], rep, report.TableOptions{MaxLocations: 100}); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteSARIF(&outs[2], rep); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		needles := []string{s}
		if strings.Contains(s, "-----BEGIN") {
			needles = nil
			for _, line := range strings.Split(s, "\n") {
				if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
					needles = append(needles, line)
				}
			}
		}
		for i, out := range outs {
			for _, n := range needles {
				if bytes.Contains(out.Bytes(), []byte(n)) {
					t.Errorf("secret value %q… appears in %s output", n[:8], []string{"json", "table", "sarif"}[i])
				}
			}
		}
	}
}

// requestLog records the requests a Scanner makes, after its own
// transport wrappers: what goes on the wire.
type requestLog struct {
	mu   sync.Mutex
	reqs []string // "GET http://host/v2/..."
}

func (l *requestLog) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.reqs = append(l.reqs, r.Method+" "+r.URL.Scheme+"://"+r.URL.Host+r.URL.Path)
	l.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// With --plain-http no request is made over https, the registry is
// pinged once per repository rather than before every blob, and a
// registry's error detail reads as text, not as Go's map syntax.
func TestRegistryRequests(t *testing.T) {
	host := realRegistry(t)
	sec := testSecrets(t)
	push(t, host+"/team/app:1", imageOf(t,
		layer(t, "", file("a", "_authToken="+sec.npm+"\n")), layer(t, "", file("b", "x\n")), layer(t, "", file("c", "y\n"))))
	tests := []struct {
		name      string
		refs      []string
		wantBlobs int    // at least
		wantErr   string // in the target's error
	}{
		{name: "three layers and a config", refs: []string{host + "/team/app:1"}, wantBlobs: 4},
		{name: "a tag that does not exist", refs: []string{host + "/team/app:nope"}, wantErr: "MANIFEST_UNKNOWN: manifest unknown (Tag=nope)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &requestLog{}
			s := newScanner(t, Options{PlainHTTP: true, Transport: log})
			rep, err := s.ScanRefs(context.Background(), tc.refs)
			if err != nil {
				t.Fatal(err)
			}
			pings, blobs := 0, 0
			for _, r := range log.reqs {
				if strings.Contains(r, "https://") {
					t.Errorf("https request with --plain-http: %s", r)
				}
				if strings.HasSuffix(r, "/v2/") {
					pings++
				}
				if strings.Contains(r, "/blobs/") {
					blobs++
				}
			}
			if pings != 1 || blobs < tc.wantBlobs {
				t.Errorf("%d pings of /v2/ (want 1, one repository), %d blob requests (want >= %d):\n%s", pings, blobs, tc.wantBlobs, strings.Join(log.reqs, "\n"))
			}
			errs := strings.Join(rep.Targets[0].Errors, "\n")
			if tc.wantErr != "" && !strings.Contains(errs, tc.wantErr) || strings.Contains(errs, "map[") {
				t.Errorf("target errors %q, want %q and no Go map text", errs, tc.wantErr)
			}
		})
	}
}
