package detectors

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

// FuzzScan runs the whole engine over arbitrary bytes: no panic, matches in
// bounds with well-formed fingerprints, and the same matches whether the
// input is scanned whole or in tiny chunks.
func FuzzScan(f *testing.F) {
	g := newGen("fuzz")
	f.Add(boundaryFixture(g), true)
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n"), false)
	f.Add(toUTF16("password = Tr0ub4dor#3\nhttps://u:p4ss!@h.io\n"), false)
	f.Add([]byte("root:$6$salt$"+strings.Repeat("a", 86)+":1:::\nAKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), true)
	f.Add([]byte("\x05\x02\x00\x00\x00\x40\x00\x01"), true)
	whole := testEngine(f, EngineOptions{Workers: 1})
	tiny := testEngine(f, EngineOptions{Workers: 2, ChunkSize: 61})
	f.Fuzz(func(t *testing.T, data []byte, memory bool) {
		if len(data) > 1<<16 {
			return
		}
		opts := ScanOptions{Memory: memory}
		a := whole.FindAll(data, opts)
		for _, m := range a {
			if m.Start < 0 || m.End <= m.Start || m.End > int64(len(data)) || !strings.HasPrefix(m.Fingerprint, "sha256:") || len(m.Fingerprint) != 71 {
				t.Fatalf("bad match %+v", m)
			}
		}
		var b []Match
		if _, err := tiny.Scan(context.Background(), bytes.NewReader(data), int64(len(data)), []Range{{0, int64(len(data))}}, opts, func(m Match) { b = append(b, m) }); err != nil {
			t.Fatal(err)
		}
		sortMatches(b)
		if fmt.Sprint(keysOf(a)) != fmt.Sprint(keysOf(b)) {
			t.Fatalf("whole %v != chunked %v", keysOf(a), keysOf(b))
		}
		if memory {
			// MemoryOnly: the memory rules' matches of the same scan,
			// nothing else.
			var mem []Match
			for _, m := range a {
				if m.Category == "memory" {
					mem = append(mem, m)
				}
			}
			only := tiny.FindAll(data, ScanOptions{Memory: true, MemoryOnly: true})
			if fmt.Sprint(keysOf(only)) != fmt.Sprint(keysOf(mem)) {
				t.Fatalf("MemoryOnly %v != the memory matches %v", keysOf(only), keysOf(mem))
			}
		}
	})
}
