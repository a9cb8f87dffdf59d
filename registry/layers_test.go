package registry

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// hookedImage is testImage whose layer streams pass through hook, given
// the layer's index in img (its first, for a layer listed twice).
func hookedImage(t *testing.T, target string, img v1.Image, hook func(i int, rc io.ReadCloser) io.ReadCloser) image {
	t.Helper()
	hooked := testImage(t, target, img)
	first := map[string]int{}
	for i := range hooked.Layers {
		b := &hooked.Layers[i]
		if _, seen := first[b.Digest]; !seen {
			first[b.Digest] = i
		}
		open, index := b.open, first[b.Digest]
		b.open = func(ctx context.Context) (io.ReadCloser, error) {
			rc, err := open(ctx)
			if err != nil {
				return rc, err
			}
			return hook(index, rc), nil
		}
	}
	return hooked
}

// hookedStream counts the layer streams open at once, and can hold its
// first read until release is closed.
type hookedStream struct {
	io.ReadCloser
	hold      <-chan struct{}
	held      bool
	timedOut  *bool
	closeOnce sync.Once
	onClose   func()
}

func (h *hookedStream) Read(p []byte) (int, error) {
	if h.hold != nil && !h.held {
		h.held = true
		select {
		case <-h.hold:
		case <-time.After(20 * time.Second):
			*h.timedOut = true
		}
	}
	return h.ReadCloser.Read(p)
}

func (h *hookedStream) Close() error {
	h.closeOnce.Do(h.onClose)
	return h.ReadCloser.Close()
}

// streamWatch hooks a scan's layer streams (hookedImage's hook, given
// layer k): it records the layers opened and how many were open at once,
// holds layer holder's first read until layer releaser's stream has
// closed, when hold is set, and calls onOpen, when set, as a layer opens.
type streamWatch struct {
	holder, releaser int
	hold             bool
	onOpen           func(k int)

	mu            sync.Mutex
	opened        []int
	open, maxOpen int
	timedOut      bool
	released      chan struct{}
}

func (w *streamWatch) hook(k int, rc io.ReadCloser) io.ReadCloser {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.released == nil {
		w.released = make(chan struct{})
	}
	w.opened = append(w.opened, k)
	w.open++
	w.maxOpen = max(w.maxOpen, w.open)
	h := &hookedStream{ReadCloser: rc, timedOut: &w.timedOut, onClose: func() {
		w.mu.Lock()
		w.open--
		w.mu.Unlock()
		if k == w.releaser {
			close(w.released)
		}
	}}
	if k == w.holder && w.hold {
		h.hold = w.released
	}
	if w.onOpen != nil {
		w.onOpen(k)
	}
	return h
}

// TestLayersSideBySide: an image's layers are read two at a time, and the
// report is the one reading them in turn makes, whichever layer ends
// first. The first layer (a secret, a gzip'd log holding a key, 4,000
// files and large package records) cannot read on until the second (a
// whiteout over the first's secret, a secret of its own, small package
// records) has ended, which only reading them side by side allows; the
// run's cap on package records fits the first layer's and not both, so
// the second is the one to drop its own, as in turn. The fourth layer is
// the second again: read once.
func TestLayersSideBySide(t *testing.T) {
	testutil.RequireTool(t, "gzip")
	sec := testSecrets(t)
	logPath := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(logPath, []byte("started\n"+sec.rsaPEM+"stopped\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "gzip", "-n", logPath)
	gz, err := os.ReadFile(logPath + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	status := func(n int) string { // dpkg's status, of n bytes of hex that zstd cannot pack
		b := make([]byte, n/2)
		for i := range b {
			b[i] = byte(i*7919>>3) ^ byte(i>>11)*31 ^ byte(i*i)
		}
		return "Package: x\n" + hex.EncodeToString(b) + "\n"
	}
	first := []entry{dir("root/"), file("root/.npmrc", "//registry.npmjs.org/:_authToken="+sec.npm+"\n"),
		file("var/lib/dpkg/status", status(300_000)), {name: "var/log/app.log.gz", body: gz}}
	for i := range 4000 {
		first = append(first, file("usr/share/doc/f"+strings.Repeat("x", i%7)+"/"+hex.EncodeToString([]byte{byte(i >> 8), byte(i)}), "plain text "+strings.Repeat("y", i%300)+"\n"))
	}
	l0 := layer(t, "", first...)
	second := npmToken(t)
	l1 := layer(t, "", whiteout("root/.npmrc"), file("home/app/.npmrc", "//registry.npmjs.org/:_authToken="+second+"\n"), file("var/lib/dpkg/status", status(2_000)))
	l2 := layer(t, "", file("etc/hostname", "web\n"))
	img := imageOf(t, l0, l1, l2, l1)

	// The packed records of the first two layers, read on their own.
	s := newScanner(t, Options{})
	s.scanImage(context.Background(), testImage(t, "app", img))
	p0, p1 := s.blobs[layerDigest(t, l0)].packedRecordBytes(), s.blobs[layerDigest(t, l1)].packedRecordBytes()
	if p0 <= p1 || p1 == 0 {
		t.Fatalf("packed records: %d and %d bytes", p0, p1)
	}

	scan := func(jobs int, firstWaits bool) (rep *report.Report, opened []int, maxOpen int, timedOut bool) {
		w := &streamWatch{holder: 0, releaser: 1, hold: firstWaits}
		s := newScanner(t, Options{})
		s.layerJobs, s.maxRecordBytes = jobs, p0+p1-1
		rep = report.Merge(s.scanImage(context.Background(), hookedImage(t, "app", img, w.hook)))
		if st := s.gate.Stats(); st.Held != 0 {
			t.Errorf("%d layers at once: the gate still holds %d bytes", jobs, st.Held)
		}
		return rep, w.opened, w.maxOpen, w.timedOut
	}
	inTurn, opened, maxOpen, _ := scan(1, false)
	if maxOpen != 1 || len(opened) != 3 {
		t.Errorf("in turn: layers %v opened, %d at most at once; want each of 3 once, one at a time", opened, maxOpen)
	}
	sideBySide, opened, maxOpen, timedOut := scan(layerJobs, true)
	if timedOut {
		t.Errorf("the first layer waited 20 s for the second to end: not read side by side")
	}
	if maxOpen != layerJobs || len(opened) != 3 {
		t.Errorf("side by side: layers %v opened, %d at most at once; want each of 3 once, %d at once", opened, maxOpen, layerJobs)
	}

	for _, v := range sideBySide.Targets[0].Views {
		capped := false
		for _, n := range v.Notes {
			capped = capped || strings.HasPrefix(n, "package records not kept: the run already holds")
		}
		if want := strings.HasPrefix(v.Name, "1:") || strings.HasPrefix(v.Name, "3:"); capped != want {
			t.Errorf("view %s: records cap noted %v, want %v", v.Name, capped, want)
		}
	}
	byFP := findingsByFP(sideBySide)
	// The second layer's secret is live in its copy on top.
	for secret, exposure := range map[string]string{sec.npm: "layer", second: "layer live", sec.rsaPEM: "live"} {
		if f := byFP[fp(secret)]; f == nil || strings.Join(f.Exposure, " ") != exposure {
			t.Errorf("secret %.8s…: %+v, want exposure %s", secret, f, exposure)
		}
	}
	if f := byFP[fp(sec.rsaPEM)]; f != nil && (len(f.Locations[0].Decoded) != 1 || f.Locations[0].Decoded[0].Codec != "gzip") {
		t.Errorf("the key in the gzip'd log: %+v, want one gzip step", f.Locations[0])
	}
	a, b := reportJSON(t, inTurn), reportJSON(t, sideBySide)
	if !bytes.Equal(a, b) {
		t.Errorf("reports differ:\nin turn:      %s\nside by side: %s", a, b)
	}
}

// reportJSON is rep as JSON, without the times of its run.
func reportJSON(t *testing.T, rep *report.Report) []byte {
	t.Helper()
	c := *rep
	c.Started, c.Finished = time.Time{}, time.Time{}
	b, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLayersShareTheGate: the decoders of layers read side by side hold
// memory at one gate, as the matches a file's decoding keeps do: two
// layers of a gzip file of 60,000 distinct AWS key IDs each (a file's
// decoded matches wait for its walk: 38 MB of them) hold more than a walk
// may draw from the pool, so each takes the gate's token, and all is
// given back when the scan ends.
func TestLayersShareTheGate(t *testing.T) {
	testutil.RequireTool(t, "gzip")
	dir := t.TempDir()
	var layers []v1.Layer
	for k := range 2 {
		p := filepath.Join(dir, "tokens.log")
		if err := os.WriteFile(p, []byte(distinctKeyIDs(k<<20, 60000)), 0o644); err != nil {
			t.Fatal(err)
		}
		testutil.Run(t, "gzip", "-n", "-f", p)
		gz, err := os.ReadFile(p + ".gz")
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, layer(t, "", entry{name: "var/log/tokens.log.gz", body: gz}))
	}
	s := newScanner(t, Options{})
	rep := report.Merge(s.scanImage(context.Background(), testImage(t, "tokens", imageOf(t, layers...))))
	st := s.gate.Stats()
	if st.Acquired < 2 || st.Held != 0 || st.Peak > decode.GatePool+decode.DefaultLimits().MaxDecoderMemory {
		t.Errorf("gate: %+v; want the token taken twice, nothing held after, a peak within the pool and one walk's cap", st)
	}
	if rep.Summary.Findings == 0 {
		t.Errorf("no findings in the decoded tokens")
	}
}

// TestImagesSideBySide: the next image's layers start as the current
// image's last ones end. Of three images, A = [l0 l1], B = [l1 l2] and
// C = [l2 l3], A's first layer cannot read on until l2, B's own layer,
// has ended, which only reading ahead allows; every layer is read once,
// no more than layerJobs at once, and the report is the one reading the
// images in turn makes (l3 deletes l2's secret: live in B, a layer's in
// C).
func TestImagesSideBySide(t *testing.T) {
	sec := testSecrets(t)
	l2Token := npmToken(t)
	layers := []v1.Layer{
		layer(t, "", file("root/.npmrc", "//registry.npmjs.org/:_authToken="+sec.npm+"\n")),
		layer(t, "", file("etc/hostname", "web\n")),
		layer(t, "", file("home/app/.npmrc", "//registry.npmjs.org/:_authToken="+l2Token+"\n")),
		layer(t, "", whiteout("home/app/.npmrc"), file("etc/motd", "hello\n")),
	}
	images := []struct {
		name   string
		layers []int
	}{{"a", []int{0, 1}}, {"b", []int{1, 2}}, {"c", []int{2, 3}}}

	// scan runs the three images, jobs layers at once; image a's first
	// layer waits for l2 to end where firstWaits; the run is cancelled as
	// l2 opens where cancelAtL2.
	scan := func(jobs int, firstWaits, cancelAtL2 bool) (rep *report.Report, err error, opened []int, maxOpen int, timedOut bool) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := &streamWatch{holder: 0, releaser: 2, hold: firstWaits}
		if cancelAtL2 {
			w.onOpen = func(k int) {
				if k == 2 {
					cancel()
				}
			}
		}
		var imgs []image
		for _, im := range images {
			var ls []v1.Layer
			for _, k := range im.layers {
				ls = append(ls, layers[k])
			}
			which := im.layers
			imgs = append(imgs, hookedImage(t, im.name, imageOf(t, ls...), func(i int, rc io.ReadCloser) io.ReadCloser {
				return w.hook(which[i], rc)
			}))
		}
		s := newScanner(t, Options{})
		s.layerJobs = jobs
		rep, err = s.run(ctx, "scan", func(yield func(image) bool) {
			for _, img := range imgs {
				if !yield(img) {
					return
				}
			}
		})
		if len(s.ahead) != 0 {
			t.Errorf("%d layers at once: %d layers read ahead left after the run", jobs, len(s.ahead))
		}
		if st := s.gate.Stats(); st.Held != 0 {
			t.Errorf("%d layers at once: the gate still holds %d bytes", jobs, st.Held)
		}
		return rep, err, w.opened, w.maxOpen, w.timedOut
	}
	inTurn, err, opened, maxOpen, _ := scan(1, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if maxOpen != 1 || len(opened) != 4 {
		t.Errorf("in turn: layers %v opened, %d at most at once; want each of 4 once, one at a time", opened, maxOpen)
	}
	ahead, err, opened, maxOpen, timedOut := scan(layerJobs, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if timedOut {
		t.Errorf("image a's first layer waited 20 s for image b's layer to end: b not read ahead")
	}
	slices.Sort(opened)
	if maxOpen > layerJobs || !slices.Equal(opened, []int{0, 1, 2, 3}) {
		t.Errorf("read ahead: layers %v opened, %d at most at once; want each of 4 once, at most %d at once", opened, maxOpen, layerJobs)
	}
	var exposures []string
	for _, f := range ahead.Findings {
		if f.Fingerprint == fp(l2Token) {
			for _, l := range f.Locations {
				exposures = append(exposures, l.Target+":"+string(l.Exposure))
			}
		}
	}
	slices.Sort(exposures)
	if want := []string{"b:live", "c:layer"}; !slices.Equal(exposures, want) {
		t.Errorf("layer 2's token: locations %v, want %v", exposures, want)
	}
	a, b := reportJSON(t, inTurn), reportJSON(t, ahead)
	if !bytes.Equal(a, b) {
		t.Errorf("reports differ:\nin turn:    %s\nread ahead: %s", a, b)
	}

	// Cancelled while b's layer is read ahead: the run ends with a's part
	// only, marked incomplete, and waits for the layer read ahead (the
	// checks in scan).
	cut, err, _, _, timedOut := scan(layerJobs, true, true)
	if !errors.Is(err, context.Canceled) || cut.Complete || timedOut {
		t.Errorf("cancelled: error %v, complete %v, timed out %v; want context.Canceled, incomplete, no wait", err, cut.Complete, timedOut)
	}
	for _, tg := range cut.Targets {
		if tg.Path != "a" {
			t.Errorf("cancelled while image a was read: target %s reported", tg.Path)
		}
	}
}
