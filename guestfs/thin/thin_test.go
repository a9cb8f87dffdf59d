package thin

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// metadataXML writes thin_restore's XML for devices of random mappings:
// device 1 has n blocks, runs and single blocks with gaps (enough for
// B-trees of several levels), device 7 shares some of its data blocks
// (as a snapshot does), device 9 maps nothing.
func metadataXML(n int) string {
	rng := rand.New(rand.NewPCG(7, 9))
	var b strings.Builder
	fmt.Fprintf(&b, "<superblock uuid=\"\" time=\"3\" transaction=\"4\" flags=\"0\" version=\"2\" data_block_size=\"128\" nr_data_blocks=\"%d\">\n", 4*n+100)
	write := func(dev int, maps [][3]int) {
		mapped := 0
		for _, m := range maps {
			mapped += m[2]
		}
		fmt.Fprintf(&b, "  <device dev_id=\"%d\" mapped_blocks=\"%d\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n", dev, mapped)
		for _, m := range maps {
			if m[2] == 1 {
				fmt.Fprintf(&b, "    <single_mapping origin_block=\"%d\" data_block=\"%d\" time=\"0\"/>\n", m[0], m[1])
			} else {
				fmt.Fprintf(&b, "    <range_mapping origin_begin=\"%d\" data_begin=\"%d\" length=\"%d\" time=\"0\"/>\n", m[0], m[1], m[2])
			}
		}
		b.WriteString("  </device>\n")
	}
	var one, seven [][3]int
	v, d := 0, 0
	for v < n {
		l := 1 + rng.IntN(3)
		if rng.IntN(4) == 0 {
			l = 20
		}
		one = append(one, [3]int{v, d, l})
		if rng.IntN(3) == 0 {
			seven = append(seven, [3]int{v, d, l})
		}
		v += l + 1 + rng.IntN(4)
		d += l + rng.IntN(3)
	}
	write(1, one)
	write(7, seven)
	write(9, nil)
	b.WriteString("</superblock>\n")
	return b.String()
}

// dumped parses thin_dump's XML into the runs each device maps.
func dumped(t *testing.T, x []byte) map[uint64][]Run {
	var sb struct {
		Devices []struct {
			ID     uint64 `xml:"dev_id,attr"`
			Ranges []struct {
				Origin uint64 `xml:"origin_begin,attr"`
				Data   uint64 `xml:"data_begin,attr"`
				Len    uint64 `xml:"length,attr"`
			} `xml:"range_mapping"`
			Singles []struct {
				Origin uint64 `xml:"origin_block,attr"`
				Data   uint64 `xml:"data_block,attr"`
			} `xml:"single_mapping"`
		} `xml:"device"`
	}
	if err := xml.Unmarshal(x, &sb); err != nil {
		t.Fatal(err)
	}
	out := map[uint64][]Run{}
	for _, d := range sb.Devices {
		var runs []Run
		for _, r := range d.Ranges {
			runs = append(runs, Run{r.Origin, r.Data, r.Len})
		}
		for _, s := range d.Singles {
			runs = append(runs, Run{s.Origin, s.Data, 1})
		}
		slices.SortFunc(runs, func(a, b Run) int { return int(a.VBlock) - int(b.VBlock) })
		// Join adjacent runs, as Read does.
		var joined []Run
		for _, r := range runs {
			if n := len(joined); n > 0 && joined[n-1].VBlock+joined[n-1].Len == r.VBlock && joined[n-1].DBlock+joined[n-1].Len == r.DBlock {
				joined[n-1].Len += r.Len
				continue
			}
			joined = append(joined, r)
		}
		out[d.ID] = joined
	}
	return out
}

// restore writes metadata from XML with thin_restore and returns it.
func restore(t testing.TB, dir, x string) []byte {
	testutil.RequireTool(t, "thin_restore", "thin_dump")
	in, out := filepath.Join(dir, "meta.xml"), filepath.Join(dir, "tmeta.img")
	if err := os.WriteFile(in, []byte(x), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(out, 4<<20); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "thin_restore", "-i", in, "-o", out)
	return testutil.FileSnapshot(t, out)
}

// TestRead: metadata thin_restore writes (B-trees of several levels for
// a device of 3,000 mapped blocks) reads back as thin_dump, the
// metadata's own tool, dumps it: the same devices, each mapping the same
// virtual blocks to the same data blocks, and Lookup agrees block by
// block.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	meta := restore(t, dir, metadataXML(3000))
	want := dumped(t, testutil.Run(t, "thin_dump", filepath.Join(dir, "tmeta.img")))
	md, err := Read(bytes.NewReader(meta), int64(len(meta)), "tmeta", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if md.DataBlockSize != 128*512 {
		t.Errorf("data block size %d", md.DataBlockSize)
	}
	if len(md.Devices) != 3 || len(want) != 3 {
		t.Fatalf("%d devices, thin_dump %d", len(md.Devices), len(want))
	}
	for id, runs := range want {
		d := md.Devices[id]
		if d == nil {
			t.Fatalf("no device %d", id)
		}
		if got := d.Runs(); !slices.Equal(got, runs) {
			t.Errorf("device %d: %d runs, thin_dump %d", id, len(got), len(runs))
		}
		var mapped uint64
		for j, r := range runs {
			mapped += r.Len
			for i := range r.Len {
				if got, ok := d.Lookup(r.VBlock + i); !ok || got != r.DBlock+i {
					t.Fatalf("device %d: Lookup(%d) = %d, %v", id, r.VBlock+i, got, ok)
				}
			}
			// Find's runs end where the run does, or earlier at a leaf's
			// end (runs are joined within a leaf only).
			for v := r.VBlock; v < r.VBlock+r.Len; {
				db, n, ok := d.Find(v)
				if !ok || db != r.DBlock+(v-r.VBlock) || n == 0 || n > r.VBlock+r.Len-v {
					t.Fatalf("device %d: Find(%d) = %d, %d, %v in run %+v", id, v, db, n, ok, r)
				}
				v += n
			}
			if _, ok := d.Lookup(r.VBlock + r.Len); ok {
				t.Errorf("device %d: block %d after a run is mapped", id, r.VBlock+r.Len)
			}
			_, n, ok := d.Find(r.VBlock + r.Len)
			switch {
			case ok:
				t.Errorf("device %d: Find(%d) after a run is mapped", id, r.VBlock+r.Len)
			case j+1 < len(runs) && n != runs[j+1].VBlock-(r.VBlock+r.Len):
				t.Errorf("device %d: Find(%d) after a run: %d unmapped, the next run starts at %d", id, r.VBlock+r.Len, n, runs[j+1].VBlock)
			case j+1 == len(runs) && n != 0:
				t.Errorf("device %d: Find(%d) after the last run: %d unmapped, want 0 (all the rest)", id, r.VBlock+r.Len, n)
			}
		}
		if len(runs) > 0 {
			if _, n, ok := d.Find(0); runs[0].VBlock > 0 && (ok || n != runs[0].VBlock) {
				t.Errorf("device %d: Find(0) = %d, %v; the first run starts at %d", id, n, ok, runs[0].VBlock)
			}
			if f, ok := d.First(); !ok || f.VBlock != runs[0].VBlock || f.DBlock != runs[0].DBlock {
				t.Errorf("device %d: First() = %+v, %v; thin_dump's first run %+v", id, f, ok, runs[0])
			}
		} else if _, ok := d.First(); ok {
			t.Errorf("device %d maps nothing, First() found a run", id)
		}
		if d.MappedBlocks != mapped {
			t.Errorf("device %d: %d mapped blocks, thin_dump's mappings %d", id, d.MappedBlocks, mapped)
		}
	}
	if n := len(md.Devices[1].Runs()); n < 300 {
		t.Errorf("device 1 has %d runs: the tree has one level", n)
	}
}

// TestReadShared: trees that share nodes (a snapshot's tree shares its
// origin's until either writes) are read once and kept once. Metadata
// thin_restore writes, with 200 more devices whose top-level entries are
// then pointed at device 1's tree (as 200 snapshots of it that nothing
// wrote to): they read as device 1, through the very same leaves, within
// a cap of twice device 1's runs, where walking each tree anew would need
// 200 times.
func TestReadShared(t *testing.T) {
	var extra strings.Builder
	for id := 100; id < 300; id++ {
		fmt.Fprintf(&extra, "  <device dev_id=\"%d\" mapped_blocks=\"1\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n    <single_mapping origin_block=\"0\" data_block=\"%d\" time=\"0\"/>\n  </device>\n", id, 20000+id)
	}
	x := strings.Replace(metadataXML(3000), "</superblock>", extra.String()+"</superblock>", 1)
	x = strings.Replace(x, `nr_data_blocks="12100"`, `nr_data_blocks="30000"`, 1)
	meta := restore(t, t.TempDir(), x)
	le := binary.LittleEndian
	top := meta[le.Uint64(meta[320:])*BlockSize:]
	if top[4]&flagLeaf == 0 {
		t.Fatal("the top-level tree is not one leaf")
	}
	nr, maxEntries := int(le.Uint32(top[16:])), int(le.Uint32(top[20:]))
	var root1 uint64
	for i := range nr {
		if le.Uint64(top[headerSize+8*i:]) == 1 {
			root1 = le.Uint64(top[headerSize+8*maxEntries+8*i:])
		}
	}
	shared := 0
	for i := range nr {
		if id := le.Uint64(top[headerSize+8*i:]); id >= 100 {
			le.PutUint64(top[headerSize+8*maxEntries+8*i:], root1)
			shared++
		}
	}
	if root1 == 0 || shared != 200 {
		t.Fatalf("device 1's root %d, %d devices repointed", root1, shared)
	}
	md, err := Read(bytes.NewReader(meta), int64(len(meta)), "tmeta", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	one := md.Devices[1]
	runs := one.Runs()
	var leaves []*Leaf
	for l := range one.Leaves() {
		leaves = append(leaves, l)
	}
	if len(leaves) < 2 {
		t.Fatalf("device 1 has %d leaves: no tree of several levels", len(leaves))
	}
	md, err = Read(bytes.NewReader(meta), int64(len(meta)), "tmeta", Limits{MaxEntries: 2*len(runs) + 400})
	if err != nil {
		t.Fatalf("shared trees counted more than once: %v", err)
	}
	first := slices.Collect(md.Devices[1].Leaves())
	for id := uint64(100); id < 300; id++ {
		d := md.Devices[id]
		if d == nil {
			t.Fatalf("no device %d", id)
		}
		if got := slices.Collect(d.Leaves()); !slices.Equal(got, first) {
			t.Fatalf("device %d: %d leaves, not device 1's %d", id, len(got), len(first))
		}
		if !slices.Equal(d.Runs(), runs) {
			t.Fatalf("device %d: runs differ from device 1's", id)
		}
	}
}

// TestReadHostile: damaged metadata is refused with the offset, never
// read without bound: a node made to point at itself (a cycle), a
// truncated device, a bad magic, a virtual block whose byte offset would
// overflow, and a cap on runs.
func TestReadHostile(t *testing.T) {
	dir := t.TempDir()
	meta := restore(t, dir, metadataXML(3000))
	le := func(b []byte, off int) uint64 {
		var v uint64
		for i := 7; i >= 0; i-- {
			v = v<<8 | uint64(b[off+i])
		}
		return v
	}
	put := func(b []byte, off int, v uint64) {
		for i := range 8 {
			b[off+i] = byte(v >> (8 * i))
		}
	}
	// Device 1's tree: the mapping root's first value.
	root := le(meta, 320)
	node := meta[root*BlockSize:]
	maxEntries := int(uint32(node[20]) | uint32(node[21])<<8)
	dev1 := le(node, headerSize+8*maxEntries)
	cycle := slices.Clone(meta)
	n1 := cycle[dev1*BlockSize:]
	if n1[4]&flagInternal == 0 {
		t.Fatal("device 1's root is a leaf: no tree of several levels")
	}
	m1 := int(uint32(n1[20]) | uint32(n1[21])<<8)
	put(n1, headerSize+8*m1, dev1) // its first child is itself
	badMagic := slices.Clone(meta)
	badMagic[32] ^= 1
	// A virtual block past 2^60 bytes: its byte offset would overflow.
	huge := slices.Clone(meta)
	leaf := le(meta[dev1*BlockSize:], headerSize+8*m1)
	put(huge[leaf*BlockSize:], headerSize, 1<<59)
	for _, c := range []struct {
		name string
		data []byte
		lim  Limits
		want string
		is   error
	}{
		{"cycle", cycle, Limits{}, "reached twice (a cycle)", nil},
		{"truncated", meta[:int(dev1)*BlockSize], Limits{}, "outside the", nil},
		{"magic", badMagic, Limits{}, "offset 32 (0x20): not thin pool metadata", nil},
		{"huge", huge, Limits{}, "past 2^60 bytes", nil},
		{"entries", meta, Limits{MaxEntries: 10}, "more than 10 devices, runs and nodes kept", ErrTooManyEntries},
	} {
		_, err := Read(bytes.NewReader(c.data), int64(len(c.data)), "tmeta", c.lim)
		if err == nil || !strings.Contains(err.Error(), c.want) || c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// FuzzRead reads arbitrary bytes as thin pool metadata: it must never
// panic, and what it returns must be sorted, non-overlapping runs. The
// seed is metadata thin_restore writes at fuzz time.
func FuzzRead(f *testing.F) {
	// Trimmed after its last block in use: the fuzzer mutates every byte.
	seed := restore(f, f.TempDir(), metadataXML(600))
	end := len(seed)
	for end > BlockSize && !slices.ContainsFunc(seed[end-BlockSize:end], func(c byte) bool { return c != 0 }) {
		end -= BlockSize
	}
	f.Add(seed[:end])
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := Read(bytes.NewReader(b), int64(len(b)), "fuzz", Limits{MaxEntries: 1 << 16})
		if err != nil {
			return
		}
		for _, d := range md.Devices {
			runs := d.Runs()
			for i := 1; i < len(runs); i++ {
				if runs[i].VBlock < runs[i-1].VBlock+runs[i-1].Len {
					t.Fatalf("device %d: runs overlap", d.ID)
				}
			}
			// Find agrees with the runs, at their ends too.
			for i, r := range runs {
				if db, n, ok := d.Find(r.VBlock); !ok || db != r.DBlock || n == 0 || n > r.Len {
					t.Fatalf("device %d: Find(%d) = %d, %d, %v in run %+v", d.ID, r.VBlock, db, n, ok, r)
				}
				end := r.VBlock + r.Len
				if i+1 < len(runs) && runs[i+1].VBlock == end { // the next run starts there: Find is checked at it
					continue
				}
				if _, n, ok := d.Find(end); ok || i+1 < len(runs) && end+n != runs[i+1].VBlock || i+1 == len(runs) && n != 0 {
					t.Fatalf("device %d: Find(%d) after run %+v: %d, %v", d.ID, r.VBlock+r.Len, r, n, ok)
				}
				if i == 100 {
					break
				}
			}
		}
	})
}
