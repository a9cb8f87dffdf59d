package ntfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// run is a data run of a crafted record: length clusters from cluster lcn.
type run struct{ lcn, length int64 }

// deletedRecord is a 1 KiB MFT record (512-byte sectors) of a deleted file
// named name under the root: a $FILE_NAME and a non-resident $DATA of
// runs. A run at the previous one's cluster is coded with delta 0, as a
// hostile image repeats a run.
func deletedRecord(t *testing.T, name string, runs []run) []byte {
	t.Helper()
	le := binary.LittleEndian
	// $FILE_NAME: parent = the root (record 5, any sequence number).
	nm := utf16.Encode([]rune(name))
	val := make([]byte, 66+2*len(nm))
	le.PutUint64(val, recRoot)
	val[64], val[65] = byte(len(nm)), 1 // a Win32 name
	for i, c := range nm {
		le.PutUint16(val[66+2*i:], c)
	}
	fn := make([]byte, (24+len(val)+7)&^7)
	le.PutUint32(fn, 0x30)
	le.PutUint32(fn[4:], uint32(len(fn)))
	le.PutUint16(fn[14:], 1) // attribute id
	le.PutUint32(fn[16:], uint32(len(val)))
	le.PutUint16(fn[20:], 24)
	copy(fn[24:], val)
	// $DATA, non-resident, its mapping pairs after a 64-byte header.
	var pairs []byte
	var prev, vcns int64
	for _, r := range runs {
		delta := r.lcn - prev
		prev = r.lcn
		n := 1 // bytes of the signed delta
		for delta >= 1<<(8*n-1) || delta < -(1<<(8*n-1)) {
			n++
		}
		pairs = append(pairs, byte(n<<4|4))
		pairs = le.AppendUint32(pairs, uint32(r.length))
		for i := range n {
			pairs = append(pairs, byte(delta>>(8*i)))
		}
		vcns += r.length
	}
	pairs = append(pairs, 0)
	da := make([]byte, (64+len(pairs)+7)&^7)
	le.PutUint32(da, 0x80)
	le.PutUint32(da[4:], uint32(len(da)))
	da[8] = 1                // non-resident
	le.PutUint16(da[14:], 2) // attribute id
	le.PutUint64(da[24:], uint64(vcns-1))
	le.PutUint16(da[32:], 64)
	size := uint64(vcns * 512)
	le.PutUint64(da[40:], size)
	le.PutUint64(da[48:], size)
	le.PutUint64(da[56:], size)
	copy(da[64:], pairs)
	body := slices.Concat(fn, da, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	if 0x38+len(body) > 1022 {
		t.Fatalf("record of %d runs: %d bytes", len(runs), 0x38+len(body))
	}
	rec := make([]byte, 1024)
	copy(rec, "FILE")
	le.PutUint16(rec[4:], 0x30) // update sequence array
	le.PutUint16(rec[6:], 3)
	le.PutUint16(rec[16:], 1) // sequence number
	le.PutUint16(rec[18:], 1) // links
	le.PutUint16(rec[20:], 0x38)
	// flags 0: not in use, a file
	le.PutUint32(rec[24:], uint32(0x38+len(body)))
	le.PutUint32(rec[28:], 1024)
	le.PutUint16(rec[40:], 3)
	copy(rec[0x38:], body)
	rec[0x30] = 1 // update sequence number 1; each stride's last two bytes go to the array
	for s := 1; s <= 2; s++ {
		copy(rec[0x30+2*s:], rec[s*512-2:s*512])
		rec[s*512-2], rec[s*512-1] = 1, 0
	}
	return rec
}

// hostileNTFS makes a 64 MiB NTFS of 512-byte clusters with mkntfs and
// ntfs-3g (one live file), then writes MFT records 16 on (reserved, unused
// on a new volume) as deleted files under the root, record i with the
// runs records[i], and returns the image and its cluster count.
func hostileNTFS(t *testing.T, records func(clusters int64) [][]run) (string, int64) {
	t.Helper()
	img := testutil.MakeNTFS(t, 64<<20, testutil.FSContent{Live: map[string][]byte{"/etc/live.conf": testutil.Marker("/etc/live.conf", 300000)}}, "-c", "512")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	boot := make([]byte, 512)
	if _, err := f.ReadAt(boot, 0); err != nil {
		t.Fatal(err)
	}
	cs := int64(binary.LittleEndian.Uint16(boot[11:])) * int64(boot[13])
	clusters := int64(binary.LittleEndian.Uint64(boot[0x28:])) / int64(boot[13])
	mft := int64(binary.LittleEndian.Uint64(boot[0x30:]))
	if code := int8(boot[0x40]); cs != 512 || (code != 2 && code != -10) { // 1 KiB records
		t.Fatalf("mkntfs: %d-byte clusters, record size code %d", cs, code)
	}
	for i, runs := range records(clusters) {
		if _, err := f.WriteAt(deletedRecord(t, fmt.Sprintf("deleted%d", 16+i), runs), mft*cs+int64(16+i)*1024); err != nil {
			t.Fatal(err)
		}
	}
	return img, clusters
}

// freeParts is what a deleted run keeps, cluster by cluster as $Bitmap
// says (the walk tests 64 at a time).
func freeParts(f *FS, r fsys.Run) []fsys.Run {
	var out []fsys.Run
	for off := r.Off; off < r.Off+r.Len; off += f.clusterSize {
		if f.clusterUsed(off / f.clusterSize) {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Off+out[n-1].Len == off {
			out[n-1].Len += f.clusterSize
			continue
		}
		out = append(out, sub(r, off, off+f.clusterSize))
	}
	return out
}

// TestDeletedRunsBudget: a deleted record's runs are tested in $Bitmap a
// word at a time, within the walk's budget of twice the volume's
// clusters. Before, records of 129 runs each over the whole volume (delta
// 0) cost records × runs × clusters, one cluster at a time: on 32 Mi
// clusters 13.6 s a record, 116 s for eight.
func TestDeletedRunsBudget(t *testing.T) {
	for _, c := range []struct {
		name    string
		records func(clusters int64) [][]run
		out     bool
	}{
		{"a few runs, inside the budget", func(n int64) [][]run {
			return [][]run{{{1, n / 4}, {n / 2, n / 8}, {n / 2, 100}}, {{n / 3, n / 3}}, {{n - 200, 199}}}
		}, false},
		{"129 runs each over the whole volume, 8 records", func(n int64) [][]run {
			var recs [][]run
			for range 8 {
				recs = append(recs, slices.Repeat([]run{{1, n - 2}}, 129))
			}
			return recs
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, clusters := hostileNTFS(t, c.records)
			f, _ := openImage(t, img)
			records := c.records(clusters)
			got := map[string][]fsys.Run{}
			live := false
			err := f.Walk(context.Background(), func(e fsys.Entry) error {
				if e.Deleted && strings.HasPrefix(e.Path, "/deleted") {
					got[e.Path] = slices.Clone(e.Runs)
				}
				live = live || e.Path == "/etc/live.conf"
				return nil
			})
			var pe *fsys.PartialError
			note := fmt.Sprintf("its budget of %d clusters in $Bitmap", 2*clusters)
			if out := errors.As(err, &pe) && strings.Contains(strings.Join(pe.Notes, "; "), note); out != c.out || (err != nil && pe == nil) {
				t.Errorf("Walk: %v; want the budget's note: %v", err, c.out)
			}
			if !live || len(got) != len(records) {
				t.Fatalf("walk: live file %v, %d deleted records, want %d", live, len(got), len(records))
			}
			var tested, mapped int64
			budgetLeft := 2 * clusters
			for i, runs := range records {
				var want []fsys.Run
				fileOff := int64(0)
				for _, r := range runs {
					if r.length > budgetLeft {
						budgetLeft = -1
					}
					if budgetLeft >= 0 {
						budgetLeft -= r.length
						tested += r.length
						want = append(want, freeParts(f, fsys.Run{Off: r.lcn * 512, Len: r.length * 512, FileOff: fileOff})...)
					}
					fileOff += r.length * 512
				}
				p := fmt.Sprintf("/deleted%d", 16+i)
				for _, r := range got[p] {
					mapped += r.Len
				}
				if !slices.Equal(got[p], want) {
					t.Errorf("%s: %d runs %v..., want %d %v...", p, len(got[p]), got[p][:min(len(got[p]), 3)], len(want), want[:min(len(want), 3)])
				}
			}
			if mapped == 0 {
				t.Error("no deleted record kept a free cluster")
			}
			t.Logf("runs kept: %d, %d bytes", func() (n int) {
				for _, r := range got {
					n += len(r)
				}
				return n
			}(), mapped)
			if tested > 2*clusters || mapped > tested*512 {
				t.Errorf("tested %d clusters, mapped %d bytes: over the budget of %d clusters", tested, mapped, 2*clusters)
			}
		})
	}
}

// TestWalkCancelledInDirectory: a cancelled walk stops at the next entry
// of the directory it is in, not after the directory's last one.
func TestWalkCancelledInDirectory(t *testing.T) {
	img, _ := hostileNTFS(t, func(n int64) [][]run {
		return slices.Repeat([][]run{{{n / 2, 10}}}, 8)
	})
	f, _ := openImage(t, img)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deleted := 0
	err := f.Walk(ctx, func(e fsys.Entry) error {
		if e.Deleted && strings.HasPrefix(e.Path, "/deleted") {
			deleted++
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || deleted != 1 {
		t.Errorf("Walk: %v after %d deleted records, want canceled after 1", err, deleted)
	}
}
