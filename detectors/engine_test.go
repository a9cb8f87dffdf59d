package detectors

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

type key3 struct {
	rule, fp string
	start    int64
}

func keysOf(ms []Match) map[key3]int {
	out := map[key3]int{}
	for _, m := range ms {
		out[key3{m.RuleID, m.Fingerprint, m.Start}]++
	}
	return out
}

func scanRanges(t *testing.T, e *Engine, buf []byte, ranges []Range, opts ScanOptions) []Match {
	t.Helper()
	var out []Match
	_, err := e.Scan(context.Background(), bytes.NewReader(buf), int64(len(buf)), ranges, opts, func(m Match) { out = append(out, m) })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// boundaryFixture plants several kinds of secrets close together.
func boundaryFixture(g *gen) []byte {
	var b bytes.Buffer
	b.Write(g.bytes(37))
	b.WriteString("\nGITHUB_TOKEN=" + g.githubToken("ghp_") + "\n")
	b.WriteString("aws_access_key_id = AKIA" + g.s(csUpperD, 16) + "\naws_secret_access_key = " + g.s(csB64, 40) + "\n")
	b.Write(toUTF16("SLACK=xoxb-" + g.s("0123456789", 12) + "-" + g.s("0123456789", 12) + "-" + g.s(csAlnum, 24) + "\r\n"))
	b.WriteString("root:$6$" + g.s(csCrypt, 16) + "$" + g.s(csCrypt, 86) + ":19700:0:99999:7:::\n")
	b.Write(g.bytes(29))
	return b.Bytes()
}

// TestChunkBoundary: every secret is reported exactly once, wherever the
// cut between two ranges or two chunks falls.
func TestChunkBoundary(t *testing.T) {
	g := newGen("boundary")
	buf := boundaryFixture(g)
	ref := testEngine(t, EngineOptions{})
	want := keysOf(ref.FindAll(buf, ScanOptions{}))
	if len(want) < 5 {
		t.Fatalf("fixture yields %d matches, want >= 5:\n%s", len(want), describe(ref.FindAll(buf, ScanOptions{})))
	}
	// Every cut between two separately scanned ranges.
	for c := 0; c <= len(buf); c++ {
		got := append(scanRanges(t, ref, buf, []Range{{0, int64(c)}}, ScanOptions{}),
			scanRanges(t, ref, buf, []Range{{int64(c), int64(len(buf))}}, ScanOptions{})...)
		if k := keysOf(got); fmt.Sprint(k) != fmt.Sprint(want) {
			t.Fatalf("cut at %d: got %v, want %v", c, k, want)
		}
	}
	// Tiny chunks: cuts inside every secret within one Scan, many workers.
	for _, cs := range []int{1, 7, 64, 333} {
		e := testEngine(t, EngineOptions{ChunkSize: cs, Workers: 3})
		if k := keysOf(scanRanges(t, e, buf, []Range{{0, int64(len(buf))}}, ScanOptions{})); fmt.Sprint(k) != fmt.Sprint(want) {
			t.Fatalf("chunk size %d: got %v, want %v", cs, k, want)
		}
	}
}

// TestMarginCoversLargestKey: a JSON-escaped 4096-bit PKCS#8 key stored as
// UTF-16LE (the longest armoured match) is found exactly once with chunk
// cuts all over it, and fits in Margin.
func TestMarginCoversLargestKey(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(rk)
	keyPEM := string(pemBytes("PRIVATE KEY", p8))
	esc, _ := json.Marshal(keyPEM)
	g := newGen("margin")
	buf := append(g.bytes(5000), toUTF16(`{"private_key":`+string(esc)+`}`)...)
	buf = append(buf, g.bytes(5000)...)
	e := testEngine(t, EngineOptions{ChunkSize: 1000, Workers: 2})
	ms := matchesOf(scanRanges(t, e, buf, []Range{{0, int64(len(buf))}}, ScanOptions{}), "private-key-pkcs8")
	if len(ms) != 1 || ms[0].Fingerprint != fp(strings.TrimRight(keyPEM, "\n")) || ms[0].Encoding != "utf16le" {
		t.Fatalf("got %s", describe(ms))
	}
	if n := ms[0].End - ms[0].Start; n > int64(e.Margin()) {
		t.Fatalf("match of %d bytes exceeds margin %d", n, e.Margin())
	}
	t.Logf("JSON-escaped 4096-bit PKCS#8 key in UTF-16LE: %d bytes; margin %d", ms[0].End-ms[0].Start, e.Margin())
	for c := int64(5000); c < int64(len(buf))-5000; c += 211 {
		got := append(scanRanges(t, e, buf, []Range{{0, c}}, ScanOptions{}), scanRanges(t, e, buf, []Range{{c, int64(len(buf))}}, ScanOptions{})...)
		if n := len(matchesOf(got, "private-key-pkcs8")); n != 1 {
			t.Fatalf("cut at %d: %d matches", c, n)
		}
	}
}

func TestScanRanges(t *testing.T) {
	g := newGen("ranges")
	tok := g.githubToken("ghp_")
	buf := append(g.bytes(1000), []byte("\ntoken="+tok+"\n")...)
	buf = append(buf, g.bytes(1000)...)
	start := int64(bytes.Index(buf, []byte(tok)))
	e := testEngine(t, EngineOptions{})
	for _, c := range []struct {
		ranges []Range
		want   int
	}{
		{[]Range{{start, start + 1}}, 1},                         // only the first byte: context is read around it
		{[]Range{{0, start}}, 0},                                 // ends just before the secret
		{[]Range{{start + 1, int64(len(buf))}}, 0},               // starts inside the secret
		{[]Range{{0, 10}, {start - 5, start + 5}}, 1},            // several ranges
		{[]Range{{-100, 1 << 40}}, 1},                            // clipped to [0,size)
		{[]Range{{start, start + 3}, {start + 1, start + 2}}, 1}, // overlapping ranges: once
	} {
		var n int
		scanned, err := e.Scan(context.Background(), bytes.NewReader(buf), int64(len(buf)), c.ranges, ScanOptions{}, func(m Match) {
			if m.RuleID == "github-pat" {
				n++
			}
		})
		if err != nil || n != c.want {
			t.Errorf("ranges %v: %d matches (err %v), want %d", c.ranges, n, err, c.want)
		}
		if scanned <= 0 || scanned > int64(len(buf))*int64(len(c.ranges)) {
			t.Errorf("ranges %v: scanned %d", c.ranges, scanned)
		}
	}
}

type failingReader struct{}

func (failingReader) ReadAt(p []byte, off int64) (int, error) { return 0, errors.New("device gone") }

func TestScanErrors(t *testing.T) {
	e := testEngine(t, EngineOptions{ChunkSize: 4096})
	_, err := e.Scan(context.Background(), failingReader{}, 1<<20, []Range{{0, 1 << 20}}, ScanOptions{}, func(Match) {})
	if err == nil || !strings.Contains(err.Error(), "offset") {
		t.Errorf("read error: %v", err)
	}
	// A reader shorter than the claimed size.
	_, err = e.Scan(context.Background(), bytes.NewReader(make([]byte, 100)), 1000, []Range{{0, 1000}}, ScanOptions{}, func(Match) {})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short reader: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = e.Scan(ctx, bytes.NewReader(make([]byte, 1<<20)), 1<<20, []Range{{0, 1 << 20}}, ScanOptions{}, func(Match) {})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestRulesFileAndDisable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.toml")
	const file = `
title = "corp rules"
[allowlist]
paths = ["vendor/"]

[[rules]]
id = "acme-api-token"
description = "ACME internal API token"
regex = '''acme_(?P<user>[a-z]{3,8})_([0-9a-f]{32})'''
keywords = ["acme_"]
secretGroup = 2
entropy = 3.0
severity = "critical"
tags = ["internal"]

[[rules]]
id = "legacy-code"
description = "no keywords: regex over every byte"
regex = '''LEGACY-[0-9]{12}'''
`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	custom := cfg.Rules
	if len(cfg.Allowlists) != 1 || !slices.Equal(cfg.Allowlists[0].Paths, []string{"vendor/"}) || !slices.Equal(custom[0].Tags, []string{"internal"}) {
		t.Errorf("global allowlist %+v, tags %q", cfg.Allowlists, custom[0].Tags)
	}
	if _, err := LoadRulesFile(path); err == nil {
		t.Error("LoadRulesFile dropped the global allowlist without an error")
	}
	if len(custom) != 2 || custom[0].Severity != SeverityCritical || custom[1].Severity != SeverityMedium || custom[0].Category != "custom" {
		t.Fatalf("loaded %+v", custom)
	}
	g := newGen("toml")
	secret := g.s(csHex, 32)
	gh := g.githubToken("ghp_")
	text := []byte("x=acme_billing_" + secret + "\ny=" + gh + "\nz=LEGACY-123456789012\n")
	e, err := NewEngine(append(Builtin(), custom...), EngineOptions{Disable: []string{"github-pat"}})
	if err != nil {
		t.Fatal(err)
	}
	ms := e.FindAll(text, ScanOptions{})
	acme := matchesOf(ms, "acme-api-token")
	if len(acme) != 1 || acme[0].Fingerprint != fp(secret) || acme[0].Meta["user"] != "billing" || acme[0].Severity != SeverityCritical {
		t.Errorf("custom rule: %s", describe(acme))
	}
	if len(matchesOf(ms, "github-pat")) != 0 {
		t.Errorf("disabled rule reported")
	}
	if len(matchesOf(ms, "legacy-code")) != 1 {
		t.Errorf("keyword-less rule: %s", describe(ms))
	}
	// Errors: unknown disabled id, duplicate id, bad regex, bad severity, short keyword.
	if _, err := NewEngine(Builtin(), EngineOptions{Disable: []string{"no-such-rule"}}); err == nil {
		t.Error("unknown disabled id accepted")
	}
	if _, err := NewEngine(append(Builtin(), Builtin()[0]), EngineOptions{}); err == nil {
		t.Error("duplicate id accepted")
	}
	for _, bad := range []string{
		"[[rules]]\nid = \"x\"\nregex = '''(unclosed'''\n",
		"[[rules]]\nid = \"x\"\nregex = 'a'\nseverity = \"urgent\"\n",
		"[[rules]]\nid = \"x\"\nregex = 'abc'\nkeywords = [\"ab\"]\n",
		"[[rules]]\nid = \"x\"\nregex = 'a'\nsecretGroup = 3\n",
		"[[rules]]\nregex = 'a'\n",
		"[[rules]]\nid = \"x\"\nregex = 'a'\ncheck = \"magic\"\n",
		"[[rules]\n",
	} {
		p := filepath.Join(dir, "bad.toml")
		_ = os.WriteFile(p, []byte(bad), 0o600)
		if _, err := LoadRulesFile(p); err == nil {
			t.Errorf("bad rules file accepted: %q", bad)
		}
	}
	if _, err := LoadRulesFile(filepath.Join(dir, "missing.toml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestSeverity(t *testing.T) {
	for _, s := range []Severity{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical} {
		p, err := ParseSeverity(strings.ToUpper(s.String()))
		if err != nil || p != s {
			t.Errorf("%v: %v %v", s, p, err)
		}
	}
	if _, err := ParseSeverity("severe"); err == nil {
		t.Error("bad severity parsed")
	}
	if SeverityLow != 1 || SeverityCritical != 4 {
		t.Error("severity values changed")
	}
}

// Progress hears every chunk as it is scanned: the calls add up to the
// ranges' bytes, and a range of many chunks gives many calls.
func TestScanProgress(t *testing.T) {
	buf := newGen("progress").bytes(100_000)
	e := testEngine(t, EngineOptions{ChunkSize: 4096, Workers: 2})
	for _, rs := range [][]Range{
		{{0, int64(len(buf))}},
		{{100, 50_000}, {60_000, 60_001}, {70_000, 99_999}},
	} {
		var want int64
		for _, r := range rs {
			want += r.End - r.Start
		}
		var mu sync.Mutex
		var calls, got int64
		opts := ScanOptions{Progress: func(n int64) { mu.Lock(); calls++; got += n; mu.Unlock() }}
		if _, err := e.Scan(context.Background(), bytes.NewReader(buf), int64(len(buf)), rs, opts, func(Match) {}); err != nil {
			t.Fatal(err)
		}
		if got != want || calls < want/4096 {
			t.Errorf("ranges %v: progress %d bytes in %d calls, want %d bytes in at least %d", rs, got, calls, want, want/4096)
		}
	}
}

// packJobs cuts ranges into jobs of at most a chunk, packing ranges closer
// than two margins into one job.
func TestPackJobs(t *testing.T) {
	const size, chunk, margin = 1000, 100, 10
	type want struct {
		own   Range
		parts []Range
		read  Range
	}
	for _, c := range []struct {
		name   string
		ranges []Range
		want   []want
	}{
		{"one range, one chunk", []Range{{5, 50}}, []want{{Range{5, 50}, nil, Range{0, 60}}}},
		{"one range cut at chunks", []Range{{0, 250}}, []want{
			{Range{0, 100}, nil, Range{0, 110}}, {Range{100, 200}, nil, Range{90, 210}}, {Range{200, 250}, nil, Range{190, 260}}}},
		{"close ranges packed", []Range{{100, 120}, {130, 150}, {170, 180}}, []want{
			{Range{100, 180}, []Range{{100, 120}, {130, 150}, {170, 180}}, Range{90, 190}}}},
		{"a gap of two margins still packs", []Range{{100, 120}, {140, 150}}, []want{
			{Range{100, 150}, []Range{{100, 120}, {140, 150}}, Range{90, 160}}}},
		{"a wider gap splits", []Range{{100, 120}, {141, 150}}, []want{
			{Range{100, 120}, nil, Range{90, 130}}, {Range{141, 150}, nil, Range{131, 160}}}},
		{"a packed job ends at a chunk, inside a range", []Range{{100, 150}, {160, 260}}, []want{
			{Range{100, 200}, []Range{{100, 150}, {160, 200}}, Range{90, 210}}, {Range{200, 260}, nil, Range{190, 270}}}},
		{"the next range starts a chunk past the first", []Range{{100, 110}, {115, 199}, {200, 205}}, []want{
			{Range{100, 199}, []Range{{100, 110}, {115, 199}}, Range{90, 209}}, {Range{200, 205}, nil, Range{190, 215}}}},
		{"context clipped to the space", []Range{{995, 1000}}, []want{{Range{995, 1000}, nil, Range{985, 1000}}}},
		{"nothing", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []want
			packJobs(c.ranges, size, chunk, margin, func(j job) bool {
				got = append(got, want{j.own, j.parts, Range{j.readStart, j.readStart + int64(j.readLength)}})
				return true
			})
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("got  %v\nwant %v", got, c.want)
			}
		})
	}
	// yield's false stops the cutting.
	n := 0
	packJobs([]Range{{0, 1000}}, size, chunk, margin, func(job) bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("packJobs went on after yield returned false: %d jobs", n)
	}
}

// A scan of many small ranges (a memory dump's runs of pages between its
// holes) reports what scanning each range alone does: the matches that
// start in a range, wherever they end, and none that start between them.
func TestScanPackedRanges(t *testing.T) {
	g := newGen("packed")
	var buf []byte
	var starts []int64
	for range 60 {
		buf = append(buf, g.bytes(150+len(buf)%97)...)
		tok := g.githubToken("ghp_")
		buf = append(buf, "\ntoken="...)
		starts = append(starts, int64(len(buf)))
		buf = append(buf, tok+"\n"...)
	}
	buf = append(buf, g.bytes(500)...)
	// Ranges of 300 bytes every 350 bytes: some secrets start inside one
	// (some of them running past its end), others in the gaps.
	var ranges []Range
	for s := int64(0); s < int64(len(buf)); s += 350 {
		ranges = append(ranges, Range{s, min(s+300, int64(len(buf)))})
	}
	ref := testEngine(t, EngineOptions{})
	var want []Match
	for _, r := range ranges {
		want = append(want, scanRanges(t, ref, buf, []Range{r}, ScanOptions{})...)
	}
	in, between := 0, 0
	for _, s := range starts {
		if (s % 350) < 300 {
			in++
		} else {
			between++
		}
	}
	if in < 10 || between < 5 || len(matchesOf(want, "github-pat")) != in {
		t.Fatalf("fixture: %d secrets start in ranges, %d between them, %d found alone", in, between, len(matchesOf(want, "github-pat")))
	}
	for _, chunk := range []int{0, 1000, 4096} {
		e := testEngine(t, EngineOptions{ChunkSize: chunk, Workers: 3})
		got := scanRanges(t, e, buf, ranges, ScanOptions{})
		if k, w := keysOf(got), keysOf(want); fmt.Sprint(k) != fmt.Sprint(w) {
			t.Errorf("chunk size %d: got %v\nwant %v", chunk, k, w)
		}
	}
}

// denseSecrets returns n lines of distinct GitHub tokens, and every tenth
// line an AWS key pair: a key ID and its secret key, whose finding
// subsumes the key ID's.
func denseSecrets(g *gen, n int) []byte {
	var b bytes.Buffer
	for i := range n {
		if i%10 == 0 {
			b.WriteString("id=AKIA" + g.s(csUpperD, 16) + " secret=" + g.s(csB64, 40) + "\n")
		}
		b.WriteString("token=" + g.githubToken("ghp_") + "\n")
	}
	return b.Bytes()
}

// A chunk holding more matches than it keeps before handing them on
// reports what scanning it in pieces too small for that does: every match
// once, and the key IDs inside a key pair's match dropped.
func TestDenseChunkFlushes(t *testing.T) {
	buf := denseSecrets(newGen("dense"), 12*flushMatches)
	e := testEngine(t, EngineOptions{Workers: 2})
	var want []Match
	const piece = 16 << 10 // about 300 matches: never handed on early
	for s := 0; s < len(buf); s += piece {
		want = append(want, scanRanges(t, e, buf, []Range{{int64(s), int64(min(s+piece, len(buf)))}}, ScanOptions{})...)
	}
	tokens, pairs, ids := len(matchesOf(want, "github-pat")), len(matchesOf(want, "aws-access-key-pair")), len(matchesOf(want, "aws-access-key-id"))
	if tokens != 12*flushMatches || pairs < 12*flushMatches/10-2 || ids > 2 {
		t.Fatalf("fixture: %d tokens, %d key pairs, %d key IDs", tokens, pairs, ids)
	}
	for _, chunk := range []int{0, len(buf) / 3} {
		e := testEngine(t, EngineOptions{Workers: 2, ChunkSize: chunk})
		got := scanRanges(t, e, buf, []Range{{0, int64(len(buf))}}, ScanOptions{})
		if k, w := keysOf(got), keysOf(want); fmt.Sprint(k) != fmt.Sprint(w) {
			t.Errorf("chunk size %d: %d matches (%d key IDs), want %d", chunk, len(got), len(matchesOf(got, "aws-access-key-id")), len(want))
		}
	}
}

// A rule that gets enough findings within a chunk stops being validated
// there: the matches it hands on stay near the caller's cap (a flush
// past it), not the chunk's hundred thousand, and the rest are counted as
// skipped.
func TestEnoughWithinChunk(t *testing.T) {
	buf := denseSecrets(newGen("enough"), 40*flushMatches)
	e := testEngine(t, EngineOptions{Workers: 1, ChunkSize: len(buf)})
	const enough = 100
	var emitted, skipped int
	var mu sync.Mutex
	opts := ScanOptions{
		Enough: func(rule string) bool {
			mu.Lock()
			defer mu.Unlock()
			return rule == "github-pat" && emitted >= enough
		},
		Skipped: func(sk Skip) {
			if sk.RuleID == "github-pat" {
				skipped += sk.Hits
			}
		},
	}
	_, err := e.Scan(context.Background(), bytes.NewReader(buf), int64(len(buf)), []Range{{0, int64(len(buf))}}, opts, func(m Match) {
		if m.RuleID == "github-pat" {
			mu.Lock()
			emitted++
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if emitted < enough || emitted > enough+2*flushMatches || skipped < 30*flushMatches {
		t.Errorf("one chunk of %d tokens: %d handed on, %d skipped; want %d to %d handed on and the rest skipped",
			40*flushMatches, emitted, skipped, enough, enough+2*flushMatches)
	}
}

// ScanStream hands on a chunk's matches as Scan's workers do, before the
// chunk ends: a decoded stream of distinct secrets held a whole chunk's
// (200,000 in 4 MiB) on every core. The same matches come out; and a
// rule that gets enough findings within the chunk stops being validated
// there, which it could only do at a flush.
func TestScanStreamFlushes(t *testing.T) {
	buf := denseSecrets(newGen("stream-flush"), 40*flushMatches)
	e := testEngine(t, EngineOptions{Workers: 1, ChunkSize: len(buf)})
	want := scanRanges(t, e, buf, []Range{{0, int64(len(buf))}}, ScanOptions{})
	var got []Match
	if _, err := e.ScanStream(context.Background(), bytes.NewReader(buf), ScanOptions{}, func(m Match) { got = append(got, m) }); err != nil {
		t.Fatal(err)
	}
	if k, w := keysOf(got), keysOf(want); fmt.Sprint(k) != fmt.Sprint(w) {
		t.Errorf("ScanStream: %d matches, Scan %d", len(got), len(want))
	}
	const enough = 100
	var emitted, skipped int
	opts := ScanOptions{
		Enough: func(rule string) bool { return rule == "github-pat" && emitted >= enough },
		Skipped: func(sk Skip) {
			if sk.RuleID == "github-pat" {
				skipped += sk.Hits
			}
		},
	}
	if _, err := e.ScanStream(context.Background(), bytes.NewReader(buf), opts, func(m Match) {
		if m.RuleID == "github-pat" {
			emitted++
		}
	}); err != nil {
		t.Fatal(err)
	}
	if emitted < enough || emitted > enough+2*flushMatches || skipped < 30*flushMatches {
		t.Errorf("one chunk of %d tokens: %d handed on, %d skipped; want %d to %d handed on and the rest skipped",
			40*flushMatches, emitted, skipped, enough, enough+2*flushMatches)
	}
}

// A chunk's keyword hits are taken a window at a time: a keyword across
// the edge between two windows is found once, whatever byte it starts at.
func TestHitWindowEdges(t *testing.T) {
	g := newGen("windows")
	buf := bytes.Repeat([]byte{' '}, 8*hitWindow)
	var want []string
	for k := 1; k < 8; k++ {
		tok := g.githubToken("ghp_")
		at := k*hitWindow + (k - 4) // the keyword starts 3 bytes before to 3 bytes after the edge
		copy(buf[at-1:], "\n"+tok+"\n")
		want = append(want, fp(tok))
	}
	e := testEngine(t, EngineOptions{Workers: 1, ChunkSize: len(buf)})
	var got []string
	for _, m := range scanRanges(t, e, buf, []Range{{0, int64(len(buf))}}, ScanOptions{}) {
		got = append(got, m.Fingerprint)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("found %d tokens, want the %d planted, once each", len(got), len(want))
	}
}

// TestScanStream: a stream read in windows finds what FindAll finds in the
// same bytes, with windows cut inside every secret, whatever the sizes the
// reader returns.
func TestScanStream(t *testing.T) {
	buf := boundaryFixture(newGen("stream"))
	want := keysOf(testEngine(t, EngineOptions{}).FindAll(buf, ScanOptions{}))
	for _, cs := range []int{1, 7, 64, 333, 4096} {
		for _, step := range []int{1, 100, 1 << 20} {
			e := testEngine(t, EngineOptions{ChunkSize: cs})
			var got []Match
			n, err := e.ScanStream(context.Background(), iotest.HalfReader(&stepReader{buf: buf, step: step}), ScanOptions{}, func(m Match) { got = append(got, m) })
			if err != nil || n != int64(len(buf)) {
				t.Fatalf("chunk %d, step %d: scanned %d of %d bytes: %v", cs, step, n, len(buf), err)
			}
			sortMatches(got)
			if k := keysOf(got); fmt.Sprint(k) != fmt.Sprint(want) {
				t.Fatalf("chunk %d, step %d: got %v, want %v", cs, step, k, want)
			}
		}
	}
	// A reader's error ends the scan after what came before it.
	e := testEngine(t, EngineOptions{})
	boom := errors.New("corrupt stream")
	var got []Match
	_, err := e.ScanStream(context.Background(), io.MultiReader(bytes.NewReader(buf), iotest.ErrReader(boom)), ScanOptions{}, func(m Match) { got = append(got, m) })
	if !errors.Is(err, boom) || fmt.Sprint(keysOf(got)) != fmt.Sprint(want) {
		t.Fatalf("after an error: %v, %v", err, keysOf(got))
	}
}

// stepReader returns at most step bytes a read.
type stepReader struct {
	buf  []byte
	step int
}

func (s *stepReader) Read(p []byte) (int, error) {
	if len(s.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), s.step)], s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// TestSignatures: magic numbers are heard at aligned offsets only, once
// each, whatever the chunks; unaligned ones are not. A chunk is probed a
// hit window at a time, so some sit at the windows' edges.
func TestSignatures(t *testing.T) {
	buf := make([]byte, 1<<20)
	gz, zs, tar := []byte{0x1f, 0x8b, 0x08}, []byte{0x28, 0xb5, 0x2f, 0xfd}, []byte("ustar")
	want := map[int64]int{}
	w := int64(hitWindow)
	for _, at := range []struct {
		off int64
		sig []byte
		i   int
	}{{0, gz, 0}, {512, zs, 1}, {4096, gz, 0}, {8192 + 257, tar, 2}, {65024, zs, 1},
		{w - 512, gz, 0}, {w, zs, 1}, {w + 512 + 257, tar, 2}, {2*w - 512 + 257, tar, 2}, {2 * w, gz, 0}, {3*w - 1024, zs, 1}, {1<<20 - 512, gz, 0}} {
		copy(buf[at.off:], at.sig)
		want[at.off-at.off%512] = at.i
	}
	copy(buf[1000:], gz)  // not aligned
	copy(buf[2048:], tar) // not where tar has it
	for _, cs := range []int{1000, 4096, 1 << 20, 4 << 20} {
		e := testEngine(t, EngineOptions{ChunkSize: cs, Workers: 2})
		got := map[int64]int{}
		opts := ScanOptions{Signatures: []Signature{{0, gz}, {0, zs}, {257, tar}}, SignatureAt: func(off int64, sig int) {
			if _, dup := got[off]; dup {
				t.Errorf("offset %d heard twice", off)
			}
			got[off] = sig
		}}
		if _, err := e.Scan(context.Background(), bytes.NewReader(buf), int64(len(buf)), []Range{{0, int64(len(buf))}}, opts, func(Match) {}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("chunk %d: got %v, want %v", cs, got, want)
		}
	}
}

// TestRejectedMatchesBudget: a small stream dense with matches that a
// check rejects (URLs with weak passwords, as in the url package's
// test.js: 34 among its 313 URLs) still has its one strong password
// validated. A rejected match costs the fruitless budget what the regexp
// read up to it, not its whole 600-byte window: before, 15 such windows
// spent a 40 KB stream's budget, and what followed was skipped. The
// flood rows keep the bound: rejected matches on every line are still
// cut off once their real cost reaches the budget.
func TestRejectedMatchesBudget(t *testing.T) {
	weak := []string{"user:pass@example.com:8000", "u:p@h.com", "user:pw@www.example.com", "user:password@mt0.google.com"}
	const strong = "deploy:Xk9mQ2vLp7Rt4wZ@db.internal.example.org"
	text := func(lines, weakLines int) []byte {
		var b bytes.Buffer
		for i := range lines {
			if i < weakLines {
				fmt.Fprintf(&b, "  'http://%s/path/%d': {\n    'href': 'x', 'protocol': 'http:', 'slashes': true\n  },\n", weak[i%len(weak)], i)
			} else {
				fmt.Fprintf(&b, "  'http://www.example.com:%d/p?q=1': {\n    'href': 'x', 'protocol': 'http:', 'slashes': true\n  },\n", 8000+i)
			}
		}
		fmt.Fprintf(&b, "  'http://%s/': {}\n", strong)
		return b.Bytes()
	}
	for _, tc := range []struct {
		name             string
		lines, weakLines int
		wantFound        bool
	}{
		{"no weak URLs", 300, 0, true},
		{"34 weak among 313, as test.js", 313, 34, true},
		{"100 weak among 400", 400, 100, true},
		// 8,000 rejected matches in 0.7 MB cost far more than one
		// stream's budget: the strong one at the end is skipped, and
		// counted.
		{"a flood of weak URLs", 8000, 8000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := text(tc.lines, tc.weakLines)
			e := testEngine(t, EngineOptions{})
			skipped := 0
			found := false
			opts := ScanOptions{Skipped: func(sk Skip) {
				if sk.RuleID == "url-credentials" {
					skipped += sk.Hits
				}
			}}
			_, err := e.ScanStream(context.Background(), bytes.NewReader(buf), opts, func(m Match) {
				if m.RuleID == "url-credentials" {
					found = true
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if found != tc.wantFound {
				t.Errorf("%d bytes, %d weak URLs: strong password found %v, want %v (%d hits skipped)", len(buf), tc.weakLines, found, tc.wantFound, skipped)
			}
			if !found && skipped == 0 {
				t.Errorf("the strong password was neither found nor counted as skipped")
			}
		})
	}
}

// TestScanInline: bytes that make one chunk are scanned on the caller's
// goroutine, starting none, with the matches, errors and skips of a scan
// split over workers; more than a chunk still goes to the workers.
func TestScanInline(t *testing.T) {
	g := newGen("inline")
	var b bytes.Buffer
	for range 40 {
		b.Write(boundaryFixture(g))
	}
	buf := b.Bytes()
	ref := testEngine(t, EngineOptions{ChunkSize: 512, Workers: 3})
	want := keysOf(scanRanges(t, ref, buf, []Range{{0, int64(len(buf))}}, ScanOptions{}))
	if len(want) < 100 {
		t.Fatalf("fixture yields %d matches", len(want))
	}
	tests := []struct {
		name      string
		chunk     int
		ranges    []Range
		inline    bool
		wantMatch map[key3]int
	}{
		{"one chunk", len(buf), []Range{{0, int64(len(buf))}}, true, want},
		{"ranges within one chunk", len(buf), []Range{{0, 1000}, {2000, int64(len(buf))}}, true, nil},
		{"over a chunk", len(buf) / 3, []Range{{0, int64(len(buf))}}, false, want},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := testEngine(t, EngineOptions{ChunkSize: tc.chunk, Workers: 3})
			before := runtime.NumGoroutine()
			most := 0
			var got []Match
			_, err := e.Scan(context.Background(), bytes.NewReader(buf), int64(len(buf)), tc.ranges, ScanOptions{}, func(m Match) {
				most = max(most, runtime.NumGoroutine())
				got = append(got, m)
			})
			if err != nil {
				t.Fatal(err)
			}
			if inline := most <= before; inline != tc.inline {
				t.Errorf("%d goroutines during the scan, %d before: inline %v, want %v", most, before, inline, tc.inline)
			}
			wantMatch := tc.wantMatch
			if wantMatch == nil {
				wantMatch = keysOf(scanRanges(t, ref, buf, tc.ranges, ScanOptions{}))
			}
			if k := keysOf(got); fmt.Sprint(k) != fmt.Sprint(wantMatch) {
				t.Errorf("matches differ from the split scan's:\ngot  %v\nwant %v", k, wantMatch)
			}
		})
	}
	// A read error inline is the scan's error, as on a worker.
	e := testEngine(t, EngineOptions{ChunkSize: len(buf), Workers: 3})
	_, err := e.Scan(context.Background(), failingReaderAt{errors.New("disk gone")}, int64(len(buf)), []Range{{0, int64(len(buf))}}, ScanOptions{}, func(Match) {})
	if err == nil || !strings.Contains(err.Error(), "disk gone") {
		t.Errorf("inline read error: %v", err)
	}
}

type failingReaderAt struct{ err error }

func (f failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, f.err }
