package memory_test

import (
	"context"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/detectors/structural"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/qemufixture"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestKeySchedulesAcrossPagesInMigrationStream plants AES-128, -192 and
// -256 key schedules across 4 KiB page boundaries of a guest's RAM and
// migrates it to a file. A migration stream puts a page header (and at
// times a block name) between consecutive pages, so a tool that reads the
// file as flat memory, like aeskeyfind, cannot see these schedules whole;
// the memory view joins the pages in guest-physical order, and every
// schedule must be reported at its guest-physical address with its key.
func TestKeySchedulesAcrossPagesInMigrationStream(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(0x22, 0x57))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	type keyCase struct {
		name    string
		keyLen  int
		page    int64 // the page boundary the schedule crosses
		before  int   // schedule bytes before the boundary
		bitErrs int   // bits flipped in the last schedule word, which no other word derives from
	}
	cases := []keyCase{
		{"aes128-1-byte-before", 16, 0x121000, 1, 0},
		{"aes128-middle", 16, 0x103000, 88, 0},
		{"aes128-1-byte-after", 16, 0x106000, 175, 0},
		{"aes192-aligned-word", 24, 0x109000, 4, 0},
		{"aes192-middle-unaligned", 24, 0x10c000, 101, 0},
		{"aes192-1-byte-after", 24, 0x10f000, 207, 0},
		{"aes256-unaligned", 32, 0x112000, 3, 0},
		{"aes256-middle", 32, 0x115000, 120, 0},
		{"aes256-1-byte-after", 32, 0x118000, 239, 0},
		{"aes128-10-bit-errors", 16, 0x11b000, 77, 10},
		{"aes256-10-bit-errors", 32, 0x11e000, 161, 10},
		{"aes192-across-2MiB", 24, 0x200000, 52, 0},
	}
	type planted struct {
		keyCase
		addr  int64
		key   []byte
		sched []byte
	}
	var plants []qemufixture.Plant
	var want []planted
	for _, c := range cases {
		key := random(c.keyLen)
		sched := structural.ExpandAESKey(key)
		for _, bit := range rng.Perm(32)[:c.bitErrs] {
			sched[len(sched)-4+bit/8] ^= 1 << (bit % 8)
		}
		addr := c.page - int64(c.before)
		if addr/4096 == (addr+int64(len(sched))-1)/4096 {
			t.Fatalf("%s: 0x%x+%d crosses no page boundary", c.name, addr, len(sched))
		}
		// The two pages around the boundary hold random bytes, as live
		// memory would, with the schedule over them.
		pages := random(8192)
		copy(pages[4096-c.before:], sched)
		plants = append(plants, qemufixture.Plant{Name: c.name, Addr: c.page - 4096, Data: pages})
		want = append(want, planted{c, addr, key, sched})
	}
	vm := qemufixture.Capture(t, qemufixture.Config{MemMiB: 32, Bare: true, Extra: plants}, `migrate "exec:cat > {dir}/mig.bin"`)
	path := vm.Path("mig.bin")
	before := qemufixture.FileSum(t, path)

	engine, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := scanner.New(scanner.Options{Engine: engine}).Scan(context.Background(), []string{path})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range rep.Targets {
		for _, e := range tg.Errors {
			t.Errorf("target %s: %s", tg.Path, e)
		}
	}
	byFP := map[string]report.Finding{}
	schedules := 0
	for _, f := range rep.Findings {
		byFP[f.Fingerprint] = f
		if f.Rule == "aes-key-schedule" {
			schedules++
		}
	}
	for _, p := range want {
		t.Run(p.name, func(t *testing.T) {
			// The fingerprint is that of the planted key bytes.
			f, ok := byFP[fingerprint(p.key)]
			if !ok {
				t.Fatalf("AES-%d schedule at guest-physical 0x%x (%d bytes before page 0x%x) not found", 8*p.keyLen, p.addr, p.before, p.page)
			}
			if f.Rule != "aes-key-schedule" || f.Metadata["bits"] != strconv.Itoa(8*p.keyLen) {
				t.Errorf("rule %q, bits %q; want aes-key-schedule, %d", f.Rule, f.Metadata["bits"], 8*p.keyLen)
			}
			var where []string
			for _, l := range f.Locations {
				if l.ViewKind == string(model.KindMemory) && l.Offset == p.addr && l.Length == int64(len(p.sched)) {
					return
				}
				where = append(where, fmt.Sprintf("%s@0x%x+%d", l.View, l.Offset, l.Length))
			}
			t.Errorf("no memory location at 0x%x+%d; got %v", p.addr, len(p.sched), where)
		})
	}
	if schedules != len(want) {
		t.Errorf("%d AES schedules reported, %d planted", schedules, len(want))
	}
	if qemufixture.FileSum(t, path) != before {
		t.Fatal("file changed by reading it")
	}

	// For the record (aeskeyfind is a benchmark tool, not a test
	// dependency): what a flat search of the stream file finds.
	if _, err := exec.LookPath("aeskeyfind"); err == nil {
		out, _ := exec.Command("aeskeyfind", "-q", path).Output()
		printed := strings.Fields(string(out))
		var found []string
		for _, p := range want {
			if slices.Contains(printed, hex.EncodeToString(p.key)) {
				found = append(found, p.name)
			}
		}
		t.Logf("aeskeyfind on the stream file found %d of the %d planted keys (it has no AES-192): %v", len(found), len(want), found)
	}
}
