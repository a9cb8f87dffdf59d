package ntfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// mftImage is an mkntfs volume, populated through ntfs-3g, with a
// credentials file and files of 255-character names (765 bytes each in
// UTF-8).
func mftImage(t *testing.T, longNames int) []byte {
	t.Helper()
	live := map[string][]byte{"/etc/app/credentials": []byte("aws_secret_access_key = x\n")}
	img := testutil.MakeNTFS(t, 16<<20, testutil.FSContent{Live: live, Extra: func(mnt string) {
		dir := filepath.Join(mnt, "names")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range longNames {
			name := fmt.Sprintf("%05d", i) + strings.Repeat("名", 250)
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}})
	return testutil.FileSnapshot(t, img)
}

// mftRecord0 returns record 0 of the volume in img, its update sequence
// undone, and a function that puts it back (fixups applied again).
func mftRecord0(t *testing.T, img []byte) ([]byte, func([]byte)) {
	t.Helper()
	le := binary.LittleEndian
	cs := int64(le.Uint16(img[0x0B:])) * int64(img[0x0D])
	at := int64(le.Uint64(img[0x30:])) * cs
	rec := bytes.Clone(img[at : at+1024])
	usa, n := int(le.Uint16(rec[4:])), int(le.Uint16(rec[6:]))
	for i := 1; i < n; i++ {
		copy(rec[i*512-2:i*512], rec[usa+2*i:usa+2*i+2])
	}
	return rec, func(b []byte) {
		for i := 1; i < n; i++ {
			copy(b[usa+2*i:], b[i*512-2:i*512])
			copy(b[i*512-2:], b[usa:usa+2])
		}
		copy(img[at:], b)
	}
}

// runlist encodes runs ({LCN, clusters}) as NTFS mapping pairs, each
// LCN relative to the one before.
func runlist(runs [][2]int64) []byte {
	var out []byte
	prev := int64(0)
	for _, r := range runs {
		var l, o []byte
		for v := r[1]; v != 0 || len(l) == 0 || l[len(l)-1]&0x80 != 0; v >>= 8 {
			l = append(l, byte(v))
		}
		d := r[0] - prev
		for v := d; ; v >>= 8 {
			o = append(o, byte(v))
			if (v>>7 == 0 || v>>7 == -1) && len(o) > 0 {
				break
			}
		}
		out = append(append(append(out, byte(len(o)<<4|len(l))), l...), o...)
		prev = r[0]
	}
	return append(out, 0)
}

// setMFTRuns gives $MFT's unnamed $DATA in record 0 the runs
// more(own, clusters), own being its runs and clusters the volume's,
// growing the attribute into the record's free space. It returns the
// bytes that own map.
func setMFTRuns(t *testing.T, img []byte, more func(own [][2]int64, clusters int64) [][2]int64) int64 {
	t.Helper()
	le := binary.LittleEndian
	cs := int64(le.Uint16(img[0x0B:])) * int64(img[0x0D])
	clusters := int64(le.Uint64(img[0x28:])) / int64(img[0x0D])
	rec, put := mftRecord0(t, img)
	for off := int(le.Uint16(rec[20:])); le.Uint32(rec[off:]) != attrEnd; off += int(le.Uint32(rec[off+4:])) {
		a := rec[off : off+int(le.Uint32(rec[off+4:]))]
		if le.Uint32(a) != attrData || a[8] == 0 || a[9] != 0 {
			continue
		}
		h, err := attr{typ: attrData, b: a}.nonResidentHeader()
		if err != nil {
			t.Fatal(err)
		}
		f := &FS{clusterSize: cs, clusters: clusters}
		rs, err := f.decodeRuns(h.runlist, 0, false)
		if err != nil || len(rs) == 0 || h.lowVCN != 0 {
			t.Fatalf("$MFT's runs %v from VCN %d, %v", rs, h.lowVCN, err)
		}
		var own [][2]int64
		mapped := int64(0)
		for _, r := range rs {
			own = append(own, [2]int64{r.Off / cs, r.Len / cs})
			mapped += r.Len
		}
		runs := more(own, clusters)
		total := int64(0)
		for _, r := range runs {
			total += r[1]
		}
		rl := runlist(runs)
		na := make([]byte, (64+len(rl)+7)&^7)
		copy(na, a[:64])
		copy(na[64:], rl)
		le.PutUint32(na[4:], uint32(len(na)))
		le.PutUint16(na[0x20:], 64)
		le.PutUint64(na[0x18:], uint64(total-1))
		for _, o := range []int{0x28, 0x30, 0x38} {
			le.PutUint64(na[o:], uint64(total*cs))
		}
		used := int(le.Uint32(rec[0x18:]))
		nrec := append(append(append([]byte{}, rec[:off]...), na...), rec[off+len(a):used]...)
		if len(nrec) > 1024 {
			t.Fatalf("record 0 of %d bytes", len(nrec))
		}
		le.PutUint32(nrec[0x18:], uint32(len(nrec)))
		put(append(nrec, make([]byte, 1024-len(nrec))...))
		return mapped
	}
	t.Fatal("no $DATA in record 0")
	return 0
}

// TestMFTBounded: what the MFT's records keep is bounded by the
// volume's bytes, whatever record 0 says. $MFT's runs may not repeat
// clusters (a 16 MiB volume whose $MFT's runlist maps the whole volume
// again and again presented hundreds of thousands of records, each
// keeping its 765-byte name): they are cut at the first run that does,
// with a note. The names kept, all records together, have a budget
// past which records keep fewer, with a note.
func TestMFTBounded(t *testing.T) {
	testutil.RequireTool(t, "mkntfs", "ntfs-3g")
	base := mftImage(t, 1200)
	for _, c := range []struct {
		name      string
		runs      func(own [][2]int64, clusters int64) [][2]int64 // nil: as made
		nameBytes int                                             // the budget of names (0: maxNameBytes)
		note      func(mft int64) string                          // the notes say it (mft: the bytes $MFT's own runs map); nil: none
		walked    int                                             // files walked under /names at least
		maxWalked int                                             // and at most
	}{
		{name: "as made", walked: 1200, maxWalked: 1200},
		{
			name: "whole volume repeated",
			runs: func(own [][2]int64, clusters int64) [][2]int64 {
				for range 60 {
					own = append(own, [2]int64{0, clusters})
				}
				return own
			},
			note: func(mft int64) string {
				return fmt.Sprintf("$MFT's runs map clusters twice (from byte %d of $MFT on): records from %d on are not read", mft, mft/1024)
			},
			walked: 1200, maxWalked: 1200,
		},
		{
			name: "run overlapping the one before",
			runs: func(own [][2]int64, clusters int64) [][2]int64 {
				last := own[len(own)-1]
				return append(own, [2]int64{last[0] + last[1]/2, last[1]})
			},
			note: func(mft int64) string {
				return fmt.Sprintf("$MFT's runs map clusters twice (from byte %d of $MFT on)", mft)
			},
			walked: 1200, maxWalked: 1200,
		},
		{
			name: "names over budget", nameBytes: 100 * 765,
			note:   func(int64) string { return "names past the budget of 76500 bytes: " },
			walked: 90, maxWalked: 102,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			nameBudget := maxNameBytes
			if c.nameBytes > 0 {
				nameBudget = c.nameBytes
			}
			img := bytes.Clone(base)
			var mft int64
			if c.runs != nil {
				mft = setMFTRuns(t, img, c.runs)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			f, err := open(context.Background(), bytes.NewReader(img), int64(len(img)), "p1", nameBudget)
			if err != nil {
				t.Fatal(err)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			kept := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("Open: %d records, %d KiB kept, notes %q", len(f.recs), kept>>10, f.notes)
			if kept > 8<<20 {
				t.Errorf("Open kept %d MiB; want at most 8", kept>>20)
			}
			notes := strings.Join(f.notes, "; ")
			if c.note == nil && notes != "" || c.note != nil && !strings.Contains(notes, c.note(mft)) {
				want := "none"
				if c.note != nil {
					want = c.note(mft)
				}
				t.Errorf("notes %q; want %q", notes, want)
			}
			names, creds := 0, false
			err = f.Walk(context.Background(), func(e fsys.Entry) error {
				if strings.HasPrefix(e.Path, "/names/") {
					names++
				}
				creds = creds || e.Path == "/etc/app/credentials"
				return nil
			})
			if err != nil || !creds || names < c.walked || names > c.maxWalked {
				t.Errorf("Walk: %v, /etc/app/credentials %v, %d files in /names; want %d to %d", err, creds, names, c.walked, c.maxWalked)
			}
			runtime.KeepAlive(f)
		})
	}
}
