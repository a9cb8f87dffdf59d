package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/report"
)

func TestShardSplitsDeterministically(t *testing.T) {
	var refs []string
	for i := range 200 {
		refs = append(refs, fmt.Sprintf("registry.example.com/team%d/app%d:v%d", i%17, i, i%3))
	}
	refs = append(refs, "registry.example.com/team1/app1:other", "registry.example.com/team1/app1@sha256:"+fmt.Sprintf("%064x", 1))
	for _, n := range []int{1, 2, 5} {
		owner := map[string]int{}
		total := 0
		for i := range n {
			sh, err := ParseShard(fmt.Sprintf("%d/%d", i, n))
			if err != nil {
				t.Fatal(err)
			}
			sel := sh.Select(refs)
			total += len(sel)
			for _, r := range sel {
				ref, err := name.ParseReference(r)
				if err != nil {
					t.Fatal(err)
				}
				repo := ref.Context().Name()
				if o, ok := owner[repo]; ok && o != i {
					t.Errorf("repository of %s in shards %d and %d", r, o, i)
				}
				owner[repo] = i
			}
			if again := sh.Select(refs); len(again) != len(sel) {
				t.Errorf("shard %d/%d not deterministic", i, n)
			}
		}
		if total != len(refs) {
			t.Errorf("n=%d: shards hold %d refs, want %d (each exactly once)", n, total, len(refs))
		}
	}
	// All tags and digests of one repository go to one shard.
	sh := Shard{I: 0, N: 7}
	a := sh.Contains("registry.example.com/team1/app1:v1")
	for _, r := range []string{"registry.example.com/team1/app1:other", "registry.example.com/team1/app1@sha256:" + fmt.Sprintf("%064x", 1), "registry.example.com/team1/app1"} {
		if sh.Contains(r) != a {
			t.Errorf("%s in another shard than its repository's other tags", r)
		}
	}
	for _, bad := range []string{"", "1", "2/2", "-1/3", "a/b", "0/0"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
}

func TestStateRoundTripAndRuleChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	tok := npmToken(t)
	img := testImage(t, "st", imageOf(t, layer(t, "", file("a/b", "_authToken="+tok+"\n")), layer(t, "", whiteout("a/b"))))

	st, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	s := newScanner(t, Options{State: st})
	rep, err := s.run(context.Background(), "registry", func(yield func(image) bool) { yield(img) })
	if err != nil || len(rep.Findings) != 1 || !*rep.Findings[0].New {
		t.Fatalf("first run: %v %+v", err, rep.Findings)
	}
	if err := st.Save("test"); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if !json.Valid(raw) {
		t.Fatal("state is not JSON")
	}
	if matches, _ := filepath.Glob(path + ".tmp-*"); len(matches) > 0 {
		t.Errorf("temporary files left: %v", matches)
	}

	// Same rules: blobs come from the state (the opener is never called).
	st2, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	var opened atomic.Int64 // layers are opened side by side
	img2 := img
	img2.Layers = append([]blob(nil), img.Layers...)
	for i := range img2.Layers {
		orig := img2.Layers[i].open
		img2.Layers[i].open = func(ctx context.Context) (io.ReadCloser, error) { opened.Add(1); return orig(ctx) }
	}
	s2 := newScanner(t, Options{State: st2})
	rep2, _ := s2.run(context.Background(), "registry", func(yield func(image) bool) { yield(img2) })
	if opened.Load() != 0 {
		t.Errorf("%d layers opened although the state has them", opened.Load())
	}
	if len(rep2.Findings) != 1 || *rep2.Findings[0].New || rep2.Findings[0].Exposure[0] != "layer" {
		t.Errorf("second run: %+v", rep2.Findings)
	}

	// Another rule set: cached blobs are dropped, fingerprints kept.
	rules := detectors.Builtin()[:len(detectors.Builtin())-1]
	e, err := detectors.NewEngine(rules, detectors.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st3, _ := LoadState(path)
	s3 := newScanner(t, Options{State: st3, Engine: e})
	rep3, _ := s3.run(context.Background(), "registry", func(yield func(image) bool) { yield(img2) })
	if opened.Load() == 0 {
		t.Errorf("rule change did not invalidate cached blobs")
	}
	if len(rep3.Findings) != 1 || *rep3.Findings[0].New {
		t.Errorf("after rule change, the known secret should not be new: %+v", rep3.Findings)
	}
	_ = s3
}

func TestPathIndexJSON(t *testing.T) {
	var b indexBuilder
	for _, p := range []string{"/a", "/a/b", "/.wh.x", "/d/.wh..wh..opq"} {
		b.add(p, p == "/a")
	}
	x := b.build()
	raw, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	var y pathIndex
	if err := json.Unmarshal(raw, &y); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/a/b", "/x", "/x/y", "/d/z", "/a/b/c"} {
		if x.hides(p) != y.hides(p) || !y.hides(p) {
			t.Errorf("hides(%s): before %v after %v", p, x.hides(p), y.hides(p))
		}
	}
	for _, p := range []string{"/b", "/d", "/dd/z"} {
		if y.hides(p) {
			t.Errorf("hides(%s) = true", p)
		}
	}
	for _, bad := range []string{`"!!"`, `"AAA="`, `5`} {
		if err := json.Unmarshal([]byte(bad), &y); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// TestStatePrune: a state forgets the manifests no run scanned, and the
// blobs no run used, for the retention, and keeps the rest: two images
// share their base layer; after a run of the second image alone, 40 days
// later, the first image's manifest, its own layer and its config are
// forgotten, the shared layer (listed by the second) is kept, and a run of
// the first image reads its own layer again but finds its secret not new.
// A state's records count against the run's cap.
func TestStatePrune(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	base := layer(t, "", file("etc/hostname", "web\n"))
	tokA, tokB := npmToken(t), npmToken(t)
	ownA := layer(t, "", file("app/.npmrc", "_authToken="+tokA+"\n"))
	a := testImage(t, "a", imageOf(t, base, ownA))
	b := testImage(t, "b", imageOf(t, base, layer(t, "", file("app/.npmrc", "_authToken="+tokB+"\n"))))
	runOn := func(imgs ...image) (*report.Report, int64) {
		t.Helper()
		st, err := LoadState(path)
		if err != nil {
			t.Fatal(err)
		}
		var opened atomic.Int64
		for k := range imgs {
			imgs[k].Layers = append([]blob(nil), imgs[k].Layers...)
			for i := range imgs[k].Layers {
				orig := imgs[k].Layers[i].open
				imgs[k].Layers[i].open = func(ctx context.Context) (io.ReadCloser, error) { opened.Add(1); return orig(ctx) }
				imgs[k].Layers[i].openAt = nil
			}
		}
		rep, err := newScanner(t, Options{State: st}).run(context.Background(), "registry", func(yield func(image) bool) {
			for _, img := range imgs {
				if !yield(img) {
					return
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		st.Prune(time.Now(), DefaultStateRetention)
		if err := st.Save("test"); err != nil {
			t.Fatal(err)
		}
		return rep, opened.Load()
	}
	runOn(a, b)
	st, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Manifests) != 2 || len(st.Blobs) != 5 {
		t.Fatalf("after the first run: %d manifests, %d blobs; want 2 and 5 (3 layers, 2 configs)", len(st.Manifests), len(st.Blobs))
	}
	// Forty days on, a run of b alone: a's manifest, own layer and config
	// are older than the retention.
	for _, m := range st.Manifests {
		m.Scanned = m.Scanned.Add(-40 * 24 * time.Hour)
	}
	for _, bl := range st.Blobs {
		bl.Used = bl.Used.Add(-40 * 24 * time.Hour)
	}
	st.used = map[string]bool{}
	if err := st.Save("test"); err != nil {
		t.Fatal(err)
	}
	// Save marks nothing used: the dates stay 40 days back.
	if _, opened := runOn(b); opened != 0 {
		t.Errorf("b's layers opened %d times although the state has them", opened)
	}
	st, err = LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Manifests) != 1 || len(st.Blobs) != 3 || st.Blobs[layerDigest(t, ownA)] != nil || st.Blobs[layerDigest(t, base)] == nil {
		t.Errorf("after a run of b: %d manifests, %d blobs (a's own layer kept: %v, the shared one: %v); want 1 and 3, a's own forgotten",
			len(st.Manifests), len(st.Blobs), st.Blobs[layerDigest(t, ownA)] != nil, st.Blobs[layerDigest(t, base)] != nil)
	}
	if len(st.Fingerprints) != 2 {
		t.Errorf("%d fingerprints kept, want both", len(st.Fingerprints))
	}
	rep, opened := runOn(a)
	if opened != 1 {
		t.Errorf("a's layers opened %d times, want its own layer once (the shared one is in the state)", opened)
	}
	if f := findingsByFP(rep)[fp(tokA)]; f == nil || f.New == nil || *f.New {
		t.Errorf("a's secret after its layer was forgotten: %+v, want found and not new", f)
	}

	// The state's records count against the run's cap.
	st, err = LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	st.Blobs[layerDigest(t, base)].PackedRecords = map[string][]byte{"/var/lib/dpkg/status": make([]byte, 1000)}
	if s := newScanner(t, Options{State: st}); s.heldRecordBytes < 1000 {
		t.Errorf("a state with 1000 bytes of records: the run holds %d", s.heldRecordBytes)
	}
}

// TestStateHoldsNoSecret: the --state file holds no secret value, package
// records included. A layer's yarn.lock (a record file wherever it lies)
// names a private registry's tarball with its password, a second URL with
// a password no detector would call a secret, and holds a token and a
// private key; its dpkg status holds a token; ordinary files hold the
// same token and key. The state's bytes, and every record it stores
// unpacked, hold none of them; the records are still stored, their
// package names, versions and URLs' hosts and paths intact.
func TestStateHoldsNoSecret(t *testing.T) {
	sec, inLock, inStatus := testSecrets(t), npmToken(t), npmToken(t)
	password, weak := randAlnum(t, 24), "hunter2"
	lock := "# yarn lockfile v1\n# " + inLock + "\n" + sec.rsaPEM + "\n" +
		"left-pad@^1.3.0:\n  version \"1.3.0\"\n  resolved \"https://deploy:" + password + "@npm.example.com/left-pad/-/left-pad-1.3.0.tgz#5b8a3a7765dfe001261dde915589e782f8c94d1e\"\n" +
		"right-pad@^1.0.1:\n  version \"1.0.1\"\n  resolved \"https://ci:" + weak + "@npm.example.com/right-pad/-/right-pad-1.0.1.tgz\"\n"
	status := "Package: demo\nStatus: install ok installed\nVersion: 1.0\nArchitecture: all\nDescription: demo\n " + inStatus + "\n\n"
	img := testImage(t, "nl", imageOf(t, layer(t, "",
		file("app/yarn.lock", lock),
		file("var/lib/dpkg/status", status),
		file("app/.env", "NPM_TOKEN="+inLock+"\nNPM_TOKEN2="+inStatus+"\n"),
		file("etc/ssl/private/app.key", sec.rsaPEM),
	)))
	path := filepath.Join(t.TempDir(), "state.json")
	st, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := newScanner(t, Options{State: st}).run(context.Background(), "registry", func(yield func(image) bool) { yield(img) })
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range rep.Findings {
		for _, l := range f.Locations {
			found[l.Path] = true
		}
	}
	for _, p := range []string{"/app/yarn.lock", "/var/lib/dpkg/status", "/app/.env", "/etc/ssl/private/app.key"} {
		if !found[p] {
			t.Errorf("no finding in %s", p)
		}
	}
	if f := findingsByFP(rep)[fp(inLock)]; f == nil || len(f.Locations) != 2 {
		t.Errorf("the yarn.lock's token: %+v, want it in the lock and in .env", f)
	}
	if err := st.Save("test"); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var needles []string
	for _, s := range []string{password, weak, inLock, inStatus} {
		needles = append(needles, s)
	}
	for _, line := range strings.Split(sec.rsaPEM, "\n") {
		if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
			needles = append(needles, line)
		}
	}
	check := func(what string, b []byte) {
		t.Helper()
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s holds the secret %q…", what, n[:4])
			}
		}
	}
	check("the state file", raw)
	var state struct {
		Version int `json:"version"`
		Blobs   map[string]struct {
			Records map[string][]byte `json:"records_zstd"`
		} `json:"blobs"`
	}
	if err := json.Unmarshal(raw, &state); err != nil {
		t.Fatal(err)
	}
	if state.Version != StateVersion || StateVersion < 2 {
		t.Errorf("state version %d", state.Version)
	}
	dec, err := newRecordDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	records := map[string][]byte{}
	for _, b := range state.Blobs {
		for p, z := range b.Records {
			if records[p], err = dec.DecodeAll(z, nil); err != nil {
				t.Fatal(err)
			}
			check("record "+p, records[p])
		}
	}
	if got := records["/app/yarn.lock"]; len(got) != len(lock) || !bytes.Contains(got, []byte("@npm.example.com/left-pad/-/left-pad-1.3.0.tgz#5b8a3a7765dfe001261dde915589e782f8c94d1e\"")) ||
		!bytes.Contains(got, []byte("left-pad@^1.3.0:\n  version \"1.3.0\"\n")) || bytes.Contains(got, []byte("deploy")) {
		t.Errorf("the stored yarn.lock is not the scrubbed file:\n%s", got)
	}
	if got := records["/var/lib/dpkg/status"]; !bytes.HasPrefix(got, []byte("Package: demo\nStatus: install ok installed\nVersion: 1.0\n")) {
		t.Errorf("the stored dpkg status is not the scrubbed file:\n%s", got)
	}
}
