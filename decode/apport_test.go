package decode

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"
)

// apportReport writes a crash report as apport's problem_report.write
// does (apport is not in this machine's Debian mirror): ProblemType first,
// the text fields ("Key: value", or "Key:" and continuation lines that
// start with a space), then each binary field as "Key: base64" and
// continuation lines, each the base64 of one piece of a gzip stream: the
// header naming the key, the deflate output of each 1 MiB block of the
// value (level 6; a block that gave no output gives no line), then the
// rest with gzip's trailer (CRC-32 and size).
func apportReport(t testing.TB, text [][2]string, binFields [][2]any) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("ProblemType: Crash\n")
	for _, kv := range text {
		if strings.Contains(kv[1], "\n") {
			b.WriteString(kv[0] + ":\n " + strings.ReplaceAll(kv[1], "\n", "\n ") + "\n")
		} else {
			b.WriteString(kv[0] + ": " + kv[1] + "\n")
		}
	}
	for _, kv := range binFields {
		key, value := kv[0].(string), kv[1].([]byte)
		b.WriteString(key + ": base64\n ")
		header := append([]byte{0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 2, 0xff}, append([]byte(key), 0)...)
		b.WriteString(base64.StdEncoding.EncodeToString(header) + "\n ")
		var out bytes.Buffer
		fw, err := flate.NewWriter(&out, 6)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(value); off += 1 << 20 {
			fw.Write(value[off:min(off+1<<20, len(value))])
			if out.Len() > 0 {
				b.WriteString(base64.StdEncoding.EncodeToString(out.Bytes()) + "\n ")
				out.Reset()
			}
		}
		fw.Close()
		out.Write(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(value)))
		out.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(value))))
		b.WriteString(base64.StdEncoding.EncodeToString(out.Bytes()) + "\n")
	}
	return b.Bytes()
}

// TestApport: an Ubuntu crash report's binary fields are members, named
// by their keys, each decoded from its base64 lines and then as the gzip
// stream they hold: a 3 MiB CoreDump (several deflate lines) and a small
// ProcMaps, after text fields, one of several lines. A field whose base64
// is broken is counted as corrupt and the walk goes on to the next. A
// report of text fields only has no leaves.
func TestApport(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	core := make([]byte, 3<<20)
	for i := range core {
		core[i] = "abcdefghij\n\x00\x01"[rng.IntN(13)]
	}
	maps := []byte("55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 1234 /usr/bin/openssl\n")
	text := [][2]string{{"Date", "Sun Dec  6 17:40:00 2026"}, {"ProcCmdline", "openssl enc -aes-128-cbc"}, {"ProcStatus", "Name:\topenssl\nState:\tS (sleeping)\nUid:\t0\t0\t0\t0"}}
	data := apportReport(t, text, [][2]any{{"CoreDump", core}, {"ProcMaps", maps}})
	if bytes.Count(data, []byte("\n ")) < 5 {
		t.Fatalf("a report of %d lines: the core is not in several pieces", bytes.Count(data, []byte("\n")))
	}
	if Sniff(data[:min(len(data), SniffLen)]) != Apport {
		t.Fatalf("sniffed as %q", Sniff(data[:SniffLen]))
	}
	leaves, res := walkAll(t, data, Options{Limits: DefaultLimits()})
	if len(leaves) != 2 {
		t.Fatalf("%d leaves: %+v", len(leaves), res)
	}
	for i, want := range []struct {
		key  string
		data []byte
	}{{"CoreDump", core}, {"ProcMaps", maps}} {
		l := leaves[i]
		if len(l.chain) != 2 || l.chain[0].Codec != Apport || l.chain[0].Member != want.key || l.chain[1].Codec != Gzip || l.chain[1].Offset != 0 {
			t.Errorf("leaf %d: chain %+v", i, l.chain)
		}
		if at := bytes.Index(data, []byte(want.key+": base64\n ")); at < 0 || l.chain[0].Offset != int64(at+len(want.key)+len(": base64\n")) {
			t.Errorf("%s: member offset %d, field at %d", want.key, l.chain[0].Offset, at)
		}
		if !bytes.Equal(l.data, want.data) {
			t.Errorf("%s: %d bytes decoded, want %d", want.key, len(l.data), len(want.data))
		}
	}

	// Broken base64 in the core's second line: that member is corrupt
	// (counted), ProcMaps still decodes.
	broken := bytes.Clone(data)
	first := bytes.Index(broken, []byte("CoreDump: base64\n "))
	second := first + bytes.Index(broken[first+len("CoreDump: base64\n "):], []byte("\n ")) + len("CoreDump: base64\n ") + 2
	copy(broken[second+10:], "!!!!")
	leaves, res = walkAll(t, broken, Options{Limits: DefaultLimits()})
	if n := len(leaves); n == 0 || leaves[n-1].chain[0].Member != "ProcMaps" || !bytes.Equal(leaves[n-1].data, maps) || len(res.Skipped) != 1 {
		t.Errorf("broken core: %d leaves, %+v", len(leaves), res)
	}

	if leaves, _ := walkAll(t, apportReport(t, text, nil), Options{Limits: DefaultLimits()}); len(leaves) != 0 {
		t.Errorf("a report of text fields: %d leaves", len(leaves))
	}
}
