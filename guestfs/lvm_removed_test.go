package guestfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// removedLVDisk makes path a PV (4 KiB extents) of VG vg whose older
// metadata copy (seqno 1) names `removed` LVs old0, old1, ..., each over
// 2n extents in turn, and whose current one (seqno 2, written by
// vgcfgrestore) names one LV "cur" striped over every other extent of
// them all, one extent a stripe: each removed LV keeps n one-extent
// ranges free. It returns the PV's pe_start.
func removedLVDisk(t *testing.T, path, vg string, removed, n int) int64 {
	t.Helper()
	testutil.RequireTool(t, "pvcreate", "vgcreate", "vgcfgbackup", "vgcfgrestore", "pvs")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(2+removed*2*n/256+1)<<20); err != nil {
		t.Fatal(err)
	}
	dev, detach := testutil.LoopDevice(t, path, 0, 0)
	defer detach()
	devs := []string{dev}
	testutil.LVM(t, devs, "pvcreate", "-q", dev)
	testutil.LVM(t, devs, "vgcreate", "-q", "-s", "4k", vg, dev)
	backup := filepath.Join(t.TempDir(), "vg.txt")
	testutil.LVM(t, devs, "vgcfgbackup", "-f", backup, vg)
	var olds, stripes []string
	for i := range removed {
		olds = append(olds, testutil.LVText(fmt.Sprintf("old%d", i), fmt.Sprintf("old%03d-0000-0000-0000-0000-0000-000000", i), true, testutil.LinearSegment(0, 2*n, "pv0", 2*n*i)))
	}
	for k := range removed * n {
		stripes = append(stripes, fmt.Sprintf("%q, %d", "pv0", 2*k))
	}
	cur := testutil.LVText("cur", "cur000-0000-0000-0000-0000-0000-000000", true,
		fmt.Sprintf("start_extent = 0\nextent_count = %d\ntype = \"striped\"\nstripe_count = %d\nstripe_size = 8\nstripes = [%s]", removed*n, removed*n, strings.Join(stripes, ", ")))
	testutil.RestoreVG(t, devs, vg, backup, 1, olds...)
	testutil.RestoreVG(t, devs, vg, backup, 2, cur)
	return testutil.PEStart(t, devs, dev)
}

// TestLVMRemovedAreas: the extents of removed LVs that a current LV
// striped in one-extent stripes still uses are cut out with one sort and
// a sweep (before, each of the n stripes rebuilt the list of up to n free
// ranges: n = 20,000 took 11.7 s and 715 MB), the note lists the first
// 16 ranges and counts the others (before: all of them, 394 KB), and the
// VG's removed areas are capped, the cut said in the notes, the bytes
// past it still located as free space.
func TestLVMRemovedAreas(t *testing.T) {
	const extent = 4096
	for _, c := range []struct {
		name         string
		removed, n   int
		cap          int   // budgets.removedAreas; 0: maxRemovedAreas
		areas        []int // areas of each removed LV listed
		cut          string
		unlisted     int // removed LVs not listed
		pvNoteSuffix string
	}{
		{name: "one removed LV, 3,000 free extents among 3,000 stripes", removed: 1, n: 3000, areas: []int{3000}},
		{name: "three removed LVs past the cap of areas", removed: 3, n: 400, cap: 600, areas: []int{400, 200}, cut: "old1", unlisted: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			bud := defaultBudgets()
			if c.cap > 0 {
				bud.removedAreas = c.cap
			}
			vg := fmt.Sprintf("imgauditrm%d", os.Getpid())
			path := filepath.Join(t.TempDir(), "pv.img")
			peStart := removedLVDisk(t, path, vg, c.removed, c.n)
			m, _ := analyzeFileWithin(t, path, bud)
			parts := map[string]PartitionInfo{}
			for _, p := range m.Partitions() {
				parts[p.Name] = p
			}
			var layout *pvLayout
			for _, p := range m.parts {
				if p.pv != nil {
					layout = p.pv
				}
			}
			if layout == nil {
				t.Fatalf("no PV: %+v", m.Partitions())
			}
			for i := range c.removed {
				name := fmt.Sprintf("%s/old%d", vg, i)
				p, listed := parts[name]
				if i >= len(c.areas) {
					if listed {
						t.Errorf("%s listed past the cap: %+v", name, p)
					}
					continue
				}
				first := peStart + int64(2*c.n*i+1)*extent
				if !listed || p.Type != "lvm2:removed" || p.Start != first || p.Size != int64(c.areas[i])*extent {
					t.Errorf("%s: %+v, want start %d, %d areas", name, p, first, c.areas[i])
					continue
				}
				n := 0
				for _, a := range layout.areas {
					if a.lv.info.Name == name {
						if a.seg != nil || a.n != extent || (a.off-peStart)/extent%2 != 1 {
							t.Errorf("%s: area %+v", name, a)
						}
						n++
					}
				}
				if n != c.areas[i] {
					t.Errorf("%s: %d areas, want %d", name, n, c.areas[i])
				}
				wantRanges := fmt.Sprintf("(disk bytes %d-%d, ", first, first+extent-1)
				more := fmt.Sprintf(" and %d more ranges)", c.areas[i]-maxRemovedNoteRanges)
				if !strings.Contains(p.Note, wantRanges) || !strings.Contains(p.Note, more) || strings.Count(p.Note, "-") != maxRemovedNoteRanges {
					t.Errorf("%s: note lists more than %d ranges or not the first: %.300q", name, maxRemovedNoteRanges, p.Note)
				}
				if cut := strings.Contains(p.Note, fmt.Sprintf("reached their cap of %d PV areas", bud.removedAreas)); cut != (c.cut == fmt.Sprintf("old%d", i)) {
					t.Errorf("%s: cut %v in note %q", name, cut, p.Note)
				}
			}
			pvNote := parts["disk"].Note
			if wantNote := fmt.Sprintf("%d more removed logical volumes of VG %s are not listed", c.unlisted, vg); (c.unlisted > 0) != strings.Contains(pvNote, wantNote) {
				t.Errorf("PV's note %q, want %q: %v", pvNote, wantNote, c.unlisted > 0)
			}
			// The current LV's extents are its own; the removed ones'
			// free, named while listed.
			for _, x := range []struct {
				extent int
				part   string
				state  string
			}{
				{0, vg + "/cur", StateUnknown},
				{1, vg + "/old0", StateFree},
				{2*c.n*c.removed - 1, map[bool]string{true: fmt.Sprintf("%s/old%d", vg, c.removed-1), false: "disk"}[len(c.areas) == c.removed], StateFree},
			} {
				loc := m.Locate(peStart + int64(x.extent)*extent + 100)
				if loc.Partition != x.part || loc.State != x.state {
					t.Errorf("extent %d: %+v, want %s, %s", x.extent, loc, x.part, x.state)
				}
			}
		})
	}
}

// TestCoverageUnused: the free parts of a range are the gaps between the
// merged current areas, found in one step per part (plus the search),
// whatever the areas' order and overlaps.
func TestCoverageUnused(t *testing.T) {
	cur := func(r ...int64) *pvLayout {
		l := &pvLayout{}
		for i := 0; i < len(r); i += 2 {
			l.areas = append(l.areas, pvArea{off: r[i], n: r[i+1], seg: &lvSegment{}})
		}
		l.areas = append(l.areas, pvArea{off: 0, n: 1000}) // a removed LV's: not a current area
		return l
	}
	for _, c := range []struct {
		name   string
		layout *pvLayout
		off, n int64
		limit  int
		want   [][2]int64
		cut    bool
	}{
		{"nothing used", cur(), 10, 20, 9, [][2]int64{{10, 30}}, false},
		{"all used", cur(0, 100), 10, 20, 9, nil, false},
		{"gaps, unsorted and overlapping areas", cur(40, 10, 10, 10, 15, 10, 60, 5), 0, 100, 9, [][2]int64{{0, 10}, {25, 40}, {50, 60}, {65, 100}}, false},
		{"adjacent areas merge", cur(10, 10, 20, 10), 0, 40, 9, [][2]int64{{0, 10}, {30, 40}}, false},
		{"range inside a gap", cur(0, 10, 90, 10), 40, 10, 9, [][2]int64{{40, 50}}, false},
		{"range starts inside an area", cur(0, 10, 20, 10), 5, 30, 9, [][2]int64{{10, 20}, {30, 35}}, false},
		{"cut by the caller", cur(10, 10, 30, 10, 50, 10), 0, 100, 2, [][2]int64{{0, 10}, {20, 30}}, true},
		{"empty range", cur(10, 10), 5, 0, 9, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got [][2]int64
			cut := c.layout.coverage().unused(c.off, c.n, func(a, z int64) bool {
				if len(got) == c.limit {
					return false
				}
				got = append(got, [2]int64{a, z})
				return true
			})
			if !slices.Equal(got, c.want) || cut != c.cut {
				t.Errorf("got %v cut %v, want %v cut %v", got, cut, c.want, c.cut)
			}
		})
	}
	// One step per part: a range over n one-unit gaps between n areas
	// visits each area once.
	const n = 100000
	l := &pvLayout{}
	for k := range n {
		l.areas = append(l.areas, pvArea{off: int64(2 * k), n: 1, seg: &lvSegment{}})
	}
	c := l.coverage()
	if len(c) != n {
		t.Fatalf("%d merged areas, want %d", len(c), n)
	}
	parts := 0
	c.unused(0, 2*n, func(a, z int64) bool { parts++; return true })
	if parts != n {
		t.Errorf("%d parts, want %d", parts, n)
	}
}

// TestRemovedLVsCancelled: mapping removed LVs stops when the scan is
// cancelled.
func TestRemovedLVsCancelled(t *testing.T) {
	vg := fmt.Sprintf("imgauditrc%d", os.Getpid())
	path := filepath.Join(t.TempDir(), "pv.img")
	removedLVDisk(t, path, vg, 1, 3000)
	m, _ := analyzeFile(t, path)
	var l *pvLayout
	owner := map[*pvLayout]*partition{}
	for _, p := range m.parts {
		if p.pv != nil {
			l, owner[p.pv] = p.pv, p
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	byName := map[string]*pvLayout{"pv0": l}
	err := m.addRemovedLVs(ctx, l.vg, []*pvLayout{l}, owner, byName, map[string]bool{"cur000-0000-0000-0000-0000-0000-000000": true})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("addRemovedLVs after cancel: %v", err)
	}
}
