// Package qemustream reads QEMU migration streams (QEVM version 3): the
// vmstate of a qcow2 internal snapshot, files written by
// `migrate "exec:cat > F"`, and the payload of libvirt save files.
//
// Parse builds an index of every RAM page record (file offsets only, no page
// bytes are kept) and exposes:
//   - Physical: the final state of the main RAM block ("pc.ram") mapped to
//     x86 guest-physical addresses (the last version of each page wins);
//   - Regions: every other RAM block (pc.bios, vga.vram, ROMs...) as its own
//     Disk addressed by RAMBlock offset, since it has no fixed physical place;
//   - Superseded: every older version of a page, laid out back to back (page i
//     of the list at offset i*PageSize); SupersededRefs[i] says which block,
//     offset and physical address it was. Older versions are evidence too.
//
// Device state after RAM has no length prefixes and is not parsed: parsing
// stops at the first non-RAM device section (DeviceStateParsed stays false).
package qemustream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/imgaudit/imgaudit/formats/memory/memdisk"
	"github.com/imgaudit/imgaudit/formats/model"
)

// Magic starts every stream: "QEVM" then be32 version 3.
const Magic = "QEVM"

// Section types (migration/savevm.c).
const (
	secEOF           = 0x00
	secStart         = 0x01
	secPart          = 0x02
	secEnd           = 0x03
	secFull          = 0x04
	secSubsection    = 0x05
	secVMDescription = 0x06
	secConfiguration = 0x07
	secCommand       = 0x08
	secFooter        = 0x7e
)

// RAM record flags (migration/ram.c).
const (
	flagZero         = 0x02
	flagMemSize      = 0x04
	flagPage         = 0x08
	flagEOS          = 0x10
	flagContinue     = 0x20
	flagXBZRLE       = 0x40
	flagHook         = 0x80
	flagCompress     = 0x100
	flagMultifdFlush = 0x200
)

// Bounds against hostile streams. QEMU has no explicit caps; these are far
// above any real guest.
const (
	maxBlocks      = 4096
	maxTotalRAM    = int64(1) << 42 // 4 TiB
	maxXBZRLEChain = 256
	maxConfigName  = 4096
	maxVMDesc      = 64 << 20
	// maxFillRuns bounds the runs of same-byte pages kept for reading
	// back (24 bytes each); pages past it read as zeros, said in a note.
	maxFillRuns = 1 << 20
)

// maxIndexBytes bounds the memory of a stream's page index that a stream
// gets whatever its size: the page versions, and what build makes of each
// (a superseded version's Piece and PageRef, or a final version's Piece,
// map entry and page number, about as much). maxVersions, the versions
// indexed, follows from it (2 Mi: 8 GiB of pages each sent once).
//
// A bigger stream gets one more version per pageBytes of its own bytes,
// up to maxVersionsCap (32 Mi, 128 GiB of pages): a data page record
// holds a whole page, so a real guest's saved RAM needs no more, and its
// index stays under 1/32 of the stream; the small records (XBZRLE deltas,
// compressed pages) that a hostile stream would repeat cannot buy more
// than the fixed part. A stream with more page records is cut there, with
// an error. A fixed count of 32 Mi whatever the size (main until
// 2026-12-08) let a 33 MB stream take 4 GiB and more before the cut.
const (
	maxIndexBytes  = 256 << 20
	versionCost    = int(unsafe.Sizeof(version{}) + unsafe.Sizeof(memdisk.Piece{}) + unsafe.Sizeof(PageRef{}))
	maxVersions    = maxIndexBytes / versionCost
	pageBytes      = 4096
	maxVersionsCap = 1 << 25
)

// versionCap is the number of page versions a stream of size bytes may
// index (see maxIndexBytes).
func versionCap(size int64) int {
	return int(min(max(int64(maxVersions), size/pageBytes), maxVersionsCap))
}

// Block is one RAMBlock from the MEM_SIZE record.
type Block struct {
	ID     string
	Length int64
	// Phys is true for the block mapped into the Physical disk.
	Phys bool
	base int64 // start in the global page numbering, page-aligned
}

// PageRef names one superseded page version.
type PageRef struct {
	Block   string
	Offset  int64 // offset in the block
	Phys    int64 // guest-physical address, -1 if the block is not mapped
	FileOff int64 // where its record starts in the stream
}

// Region is a non-physical RAM block exposed by RAMBlock offset.
type Region struct {
	Block string
	Disk  *memdisk.Disk
}

// Stream is a parsed migration stream.
type Stream struct {
	Name     string
	Version  uint32
	Machine  string // from the CONFIGURATION section; "" if absent
	PageSize int64
	Blocks   []Block
	LowMem   int64 // bytes of the main block mapped below 4 GiB (x86)

	Physical       *memdisk.Disk
	Regions        []Region
	Superseded     *memdisk.Disk
	SupersededRefs []PageRef

	// Counts of page records by kind.
	Pages, ZeroPages, FillPages, CompressedPages, XBZRLEPages int
	// SkippedXBZRLE counts XBZRLE pages that could not be decoded.
	SkippedXBZRLE int
	// DeviceStateParsed is false when parsing stopped at device sections.
	DeviceStateParsed bool
	// Complete is true when the RAM section END or the EOF marker was seen.
	Complete bool
	Notes    []string
	// Cut says why the stream was not read whole (it breaks off, a bound
	// stopped it, its state repeats its own host bytes, a page's XBZRLE
	// delta is invalid), naming the file and the offset; nil when it was.
	// Views puts it on the RAM view as model.View.Incomplete: what was
	// indexed is still scanned.
	Cut error
	// Tail is the stream's bytes from where parsing stopped at a device
	// section (which carries no length) to its end: device state (a TPM
	// emulator's, a disk controller's), and any RAM sent after a device
	// section. Views scans them as they are; nil when parsing read the
	// stream to its end.
	Tail *model.FileDisk
}

type vkind uint8

const (
	kData vkind = iota
	kZero
	kFill
	kCompressed
	kXBZRLE
)

// version is one record of one page.
type version struct {
	page    int64 // global page number
	fileOff int64 // data start (page bytes, zlib stream, or delta)
	recOff  int64 // record start
	n       uint32
	prev    int32 // previous version of the page, -1 for none
	kind    vkind
}

// Config places the stream in its host file, for extents.
type Config struct {
	// Locate maps stream offsets to host files; nil means stream offsets
	// are offsets in the file called Name.
	Locate memdisk.Locator
}

// Parse indexes the migration stream read from r (size bytes). name is used
// in errors and extents.
func Parse(ctx context.Context, name string, r io.ReaderAt, size int64) (*Stream, error) {
	return ParseWith(ctx, name, r, size, Config{})
}

// ParseWith is Parse with a Config.
func ParseWith(ctx context.Context, name string, r io.ReaderAt, size int64, cfg Config) (*Stream, error) {
	p := newParser(ctx, name, r, size)
	if b, unmap, ok := mapStream(r, size); ok {
		// Only the parse reads the mapping; the pages are read with
		// ReadAt once indexed.
		defer unmap()
		return p.parseInPlace(b, cfg)
	}
	p.c = newCursor(name, r, size)
	return p.parse(cfg, func(parse func() error) error { return parse() })
}

// newParser is the parser of the stream r holds, size bytes, before its
// cursor is chosen.
func newParser(ctx context.Context, name string, r io.ReaderAt, size int64) *parser {
	return &parser{
		s:    &Stream{Name: name, PageSize: 4096},
		r:    r,
		size: size,
		// Sized for the pages the file can hold (a record is a page and
		// an 8-byte header), up to 256 Ki, rather than grown a page at
		// a time.
		latest:  make(map[int64]int32, min(max(size, 0)/4104, 1<<18)),
		ramSecs: map[uint32]bool{},
		ctx:     ctx,
	}
}

// parseInPlace parses b, the stream's bytes (a mapping of the file r
// reads), in place.
func (p *parser) parseInPlace(b []byte, cfg Config) (*Stream, error) {
	p.c = newCursorInPlace(p.s.Name, b)
	return p.parse(cfg, func(parse func() error) error { return readingMapped(p.s.Name, p.c, parse) })
}

// parse reads the stream's records (through run, which guards reads of a
// mapping) and builds the index.
func (p *parser) parse(cfg Config, run func(func() error) error) (*Stream, error) {
	if err := run(p.header); err != nil {
		return nil, err
	}
	if err := run(p.sections); err != nil {
		if len(p.vers) == 0 || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		// Keep what was indexed: a truncated stream (libvirt "Part",
		// interrupted migration) still holds pages worth scanning.
		p.s.Notes = append(p.s.Notes, "stream parsing stopped early: "+err.Error())
		p.s.Cut = errors.Join(p.s.Cut, fmt.Errorf("stream parsing stopped early, the rest of the saved RAM is not scanned: %w", err))
	}
	if err := p.build(cfg); err != nil {
		return nil, err
	}
	return p.s, nil
}

type parser struct {
	s            *Stream
	c            *cursor
	r            io.ReaderAt
	size         int64
	ctx          context.Context
	vers         []version
	latest       map[int64]int32
	ramSecs      map[uint32]bool
	cur          int // current block index for CONTINUE, -1 none
	total        int64
	ignoreShared bool
	// fills holds the same-byte pages of pages never sent otherwise, as
	// runs: a stream of 16 Mi such pages ("65 GB") held one version and
	// one map entry each, 8 GB, and was then scanned byte by byte. Such
	// a page reads as its byte but is never scanned: one byte repeated
	// holds no secret. lostFills counts those past maxFillRuns.
	fills     []fillRun
	lostFills int64
	// zlibPages inflates compressed pages, for the Disks' decoders.
	zlibPages memdisk.Inflater
	// delta holds the XBZRLE delta being validated; id, the block id of
	// the record being read.
	delta []byte
	id    [255]byte
}

// fillRun is count same-byte pages from global page page, all of byte b,
// in one block; recOff is the record of the first.
type fillRun struct {
	page, count, recOff int64
	blk                 int
	b                   byte
}

func (p *parser) header() error {
	var h [8]byte
	if err := p.c.full(h[:], "QEVM header"); err != nil {
		return err
	}
	if string(h[:4]) != Magic {
		return model.Errorf(p.s.Name, 0, "not a QEMU migration stream (no QEVM magic)")
	}
	v := uint32(h[4])<<24 | uint32(h[5])<<16 | uint32(h[6])<<8 | uint32(h[7])
	p.s.Version = v
	if v != 3 {
		return model.Wrapf(model.ErrUnsupported, p.s.Name, 4, "migration stream version %d (only 3 is read)", v)
	}
	p.cur = -1
	return nil
}

func (p *parser) sections() error {
	c := p.c
	for {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		at := c.pos
		typ, err := c.u8("section type")
		if err != nil {
			return err
		}
		switch typ {
		case secEOF:
			p.s.Complete = true
			p.s.DeviceStateParsed = true
			return nil
		case secConfiguration:
			if err := p.configuration(); err != nil {
				return err
			}
		case secStart, secFull:
			id, err := c.be32("section id")
			if err != nil {
				return err
			}
			idstr, err := c.str("section idstr")
			if err != nil {
				return err
			}
			if _, err := c.be32("instance id"); err != nil {
				return err
			}
			ver, err := c.be32("version id")
			if err != nil {
				return err
			}
			if idstr != "ram" {
				p.stopAtDevice(idstr, at)
				return nil
			}
			if ver != 4 {
				return model.Wrapf(model.ErrUnsupported, p.s.Name, at, "ram section version %d (4 expected)", ver)
			}
			p.ramSecs[id] = true
			if err := p.ram(id); err != nil {
				return err
			}
			if typ == secFull {
				p.s.Complete = true
			}
		case secPart, secEnd:
			id, err := c.be32("section id")
			if err != nil {
				return err
			}
			if !p.ramSecs[id] {
				p.stopAtDevice(fmt.Sprintf("section %d", id), at)
				return nil
			}
			if err := p.ram(id); err != nil {
				return err
			}
			if typ == secEnd {
				p.s.Complete = true
			}
		case secVMDescription:
			n, err := c.be32("vmdescription length")
			if err != nil {
				return err
			}
			if int64(n) > maxVMDesc {
				return model.Errorf(p.s.Name, at, "vmdescription of %d bytes", n)
			}
			if err := c.skip(int64(n), "vmdescription"); err != nil {
				return err
			}
		case secCommand:
			if _, err := c.be16("command"); err != nil {
				return err
			}
			n, err := c.be16("command length")
			if err != nil {
				return err
			}
			if err := c.skip(int64(n), "command data"); err != nil {
				return err
			}
		default:
			return model.Errorf(p.s.Name, at, "unknown section type 0x%02x", typ)
		}
	}
}

func (p *parser) stopAtDevice(what string, at int64) {
	p.s.Notes = append(p.s.Notes, fmt.Sprintf("device state not parsed: stopped at %s (offset %d); device sections carry no length, and the rest of the stream is scanned as it is (its device-state view)", what, at))
	if n := p.size - at; n > 0 {
		p.s.Tail = tailDisk(p.r, p.s.Name, at, n)
	}
}

// configuration reads the CONFIGURATION section: be32 len + machine name,
// then optional subsections.
func (p *parser) configuration() error {
	c := p.c
	n, err := c.be32("configuration name length")
	if err != nil {
		return err
	}
	if n > maxConfigName {
		return model.Errorf(p.s.Name, c.pos-4, "machine name of %d bytes", n)
	}
	b := make([]byte, n)
	if err := c.full(b, "machine name"); err != nil {
		return err
	}
	p.s.Machine = string(b)
	for {
		t, ok := c.peek()
		if !ok || t != secSubsection {
			return nil
		}
		at := c.pos
		c.u8("subsection")
		name, err := c.str("subsection name")
		if err != nil {
			return err
		}
		if _, err := c.be32("subsection version"); err != nil {
			return err
		}
		switch name {
		case "configuration/target-page-bits":
			bits, err := c.be32("target page bits")
			if err != nil {
				return err
			}
			if bits < 10 || bits > 16 {
				return model.Errorf(p.s.Name, at, "target page bits %d", bits)
			}
			p.s.PageSize = 1 << bits
		case "configuration/capabilities":
			cnt, err := c.be32("capability count")
			if err != nil {
				return err
			}
			if cnt > 256 {
				return model.Errorf(p.s.Name, at, "%d capabilities", cnt)
			}
			for range cnt {
				capName, err := c.str("capability")
				if err != nil {
					return err
				}
				if capName == "x-ignore-shared" {
					p.ignoreShared = true
				}
			}
		case "configuration/uuid":
			if err := c.skip(16, "uuid"); err != nil {
				return err
			}
		default:
			return model.Wrapf(model.ErrUnsupported, p.s.Name, at, "configuration subsection %q", name)
		}
	}
}

// footer consumes the section footer (0x7e + be32 id) if present.
func (p *parser) footer(id uint32) error {
	t, ok := p.c.peek()
	if !ok || t != secFooter {
		return nil
	}
	at := p.c.pos
	p.c.u8("footer")
	got, err := p.c.be32("footer section id")
	if err != nil {
		return err
	}
	if got != id {
		return model.Errorf(p.s.Name, at, "section footer for %d inside section %d", got, id)
	}
	return nil
}

// ram reads RAM records up to EOS, then the footer.
func (p *parser) ram(id uint32) error {
	c := p.c
	ps := p.s.PageSize
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := p.ctx.Err(); err != nil {
				return err
			}
		}
		at := c.pos
		v, err := c.be64("ram record")
		if err != nil {
			return err
		}
		flags := int64(v) & (ps - 1)
		addr := int64(v &^ uint64(ps-1))
		blk := -1
		if flags&(flagZero|flagPage|flagCompress|flagXBZRLE) != 0 {
			if blk, err = p.block(flags, at); err != nil {
				return err
			}
			if addr < 0 || addr > p.s.Blocks[blk].Length-ps {
				return model.Errorf(p.s.Name, at, "page offset 0x%x outside block %q", addr, p.s.Blocks[blk].ID)
			}
		}
		switch flags &^ flagContinue {
		case flagMemSize:
			if err := p.memSize(int64(v&^uint64(ps-1)), at); err != nil {
				return err
			}
		case flagZero:
			fill, err := c.u8("zero page fill")
			if err != nil {
				return err
			}
			p.s.ZeroPages++
			k := kZero
			if fill != 0 {
				k, p.s.FillPages = kFill, p.s.FillPages+1
			}
			if err := p.add(blk, addr, version{kind: k, recOff: at, fileOff: at, n: uint32(fill)}); err != nil {
				return err
			}
		case flagPage:
			if err := p.add(blk, addr, version{kind: kData, recOff: at, fileOff: c.pos, n: uint32(ps)}); err != nil {
				return err
			}
			p.s.Pages++
			if err := c.skip(ps, "page data"); err != nil {
				return err
			}
		case flagCompress:
			l, err := c.be32("compressed page length")
			if err != nil {
				return err
			}
			// compressBound(page) in zlib.
			if l == 0 || int64(l) > ps+ps>>12+ps>>14+13 {
				return model.Errorf(p.s.Name, at, "compressed page of %d bytes", l)
			}
			if err := p.add(blk, addr, version{kind: kCompressed, recOff: at, fileOff: c.pos, n: l}); err != nil {
				return err
			}
			p.s.CompressedPages++
			if err := c.skip(int64(l), "compressed page"); err != nil {
				return err
			}
		case flagXBZRLE:
			enc, err := c.u8("xbzrle encoding")
			if err != nil {
				return err
			}
			l, err := c.be16("xbzrle length")
			if err != nil {
				return err
			}
			if enc != 1 || int64(l) > ps {
				return model.Errorf(p.s.Name, at, "xbzrle page: encoding %d, length %d", enc, l)
			}
			p.s.XBZRLEPages++
			// Validated only, then dropped: one buffer for them all.
			if len(p.delta) < int(l) {
				p.delta = make([]byte, ps)
			}
			delta := p.delta[:l]
			dataAt := c.pos
			if err := c.full(delta, "xbzrle delta"); err != nil {
				return err
			}
			if xbzrleDecode(delta, nil, int(ps)) < 0 {
				// QEMU would fail the migration here, so no stream it
				// wrote has one. The delta's literal bytes are read by
				// no view, so the RAM view is incomplete (a gate fails
				// closed) rather than only counting the page.
				p.s.SkippedXBZRLE++
				if p.s.SkippedXBZRLE == 1 {
					p.s.Cut = errors.Join(p.s.Cut, model.Errorf(p.s.Name, at,
						"XBZRLE page with an invalid delta (QEMU refuses such a stream): its bytes are not scanned"))
				}
				continue
			}
			if err := p.add(blk, addr, version{kind: kXBZRLE, recOff: at, fileOff: dataAt, n: uint32(l)}); err != nil {
				return err
			}
		case flagEOS:
			return p.footer(id)
		case flagMultifdFlush:
			// QEMU 8+: a sync point with no payload.
		default:
			if flags&flagHook != 0 {
				return model.Wrapf(model.ErrUnsupported, p.s.Name, at, "RDMA ram hook record")
			}
			return model.Errorf(p.s.Name, at, "unknown ram record flags 0x%x", flags)
		}
	}
}

// block resolves the block of a page record.
func (p *parser) block(flags int64, at int64) (int, error) {
	if flags&flagContinue != 0 {
		if p.cur < 0 {
			return 0, model.Errorf(p.s.Name, at, "CONTINUE page with no block before it")
		}
		return p.cur, nil
	}
	// Read into a buffer: a record that names its block, rather than
	// saying CONTINUE, made a string of each name.
	n, err := p.c.u8("block id")
	if err != nil {
		return 0, err
	}
	id := p.id[:n]
	if err := p.c.full(id, "block id"); err != nil {
		return 0, err
	}
	for i := range p.s.Blocks {
		if p.s.Blocks[i].ID == string(id) {
			p.cur = i
			return i, nil
		}
	}
	return 0, model.Errorf(p.s.Name, at, "page for unknown RAM block %q", id)
}

// memSize reads the block list: blocks {u8 len, id, be64 length} until their
// lengths sum to total.
func (p *parser) memSize(total int64, at int64) error {
	if total <= 0 || total > maxTotalRAM {
		return model.Errorf(p.s.Name, at, "RAM total of %d bytes", total)
	}
	first := len(p.s.Blocks) == 0
	var blocks []Block
	base := int64(0)
	for rem := total; rem > 0; {
		if len(blocks) >= maxBlocks {
			return model.Errorf(p.s.Name, at, "more than %d RAM blocks", maxBlocks)
		}
		id, err := p.c.str("block id")
		if err != nil {
			return err
		}
		l, err := p.c.be64("block length")
		if err != nil {
			return err
		}
		if l == 0 || l > uint64(rem) {
			return model.Errorf(p.s.Name, p.c.pos-8, "RAM block %q of %d bytes exceeds the %d bytes left of the total", id, l, rem)
		}
		if p.ignoreShared {
			if _, err := p.c.be64("shared block address"); err != nil {
				return err
			}
		}
		rem -= int64(l)
		blocks = append(blocks, Block{ID: id, Length: int64(l), base: base})
		base += (int64(l) + p.s.PageSize - 1) / p.s.PageSize
	}
	if first {
		p.s.Blocks = blocks
		return nil
	}
	if len(blocks) != len(p.s.Blocks) {
		return model.Errorf(p.s.Name, at, "second RAM block list differs from the first")
	}
	for i := range blocks {
		if blocks[i].ID != p.s.Blocks[i].ID || blocks[i].Length != p.s.Blocks[i].Length {
			return model.Errorf(p.s.Name, at, "second RAM block list differs from the first")
		}
	}
	return nil
}

// add records a page version. Zero pages are only recorded when they hide an
// earlier non-zero version; a page never sent reads as zero anyway.
//
// A zero or same-byte page that follows one of the same page takes its
// place: build keeps only the final version of a page, and of the
// versions before it only the ones with bytes of their own (data,
// compressed, XBZRLE), never a zero or same-byte one, and an XBZRLE
// delta after it applies to the page's last state either way. One version
// a record (main until 2026-12-08) let a 297 MB stream of 33 M zero
// records for one page, 9 bytes each, index 33 M versions, 6.5 GB.
func (p *parser) add(blk int, addr int64, v version) error {
	v.page = p.s.Blocks[blk].base + addr/p.s.PageSize
	prev, seen := p.latest[v.page]
	if v.kind == kZero && !seen {
		return nil
	}
	if seen && (v.kind == kZero || v.kind == kFill) {
		if last := &p.vers[prev]; last.kind == kZero || last.kind == kFill {
			last.kind, last.n, last.recOff, last.fileOff = v.kind, v.n, v.recOff, v.fileOff
			return nil
		}
	}
	if v.kind == kFill && !seen {
		if n := len(p.fills) - 1; n >= 0 && p.fills[n].blk == blk && p.fills[n].b == byte(v.n) && p.fills[n].page+p.fills[n].count == v.page {
			p.fills[n].count++
			return nil
		}
		if len(p.fills) >= maxFillRuns {
			p.lostFills++
			return nil
		}
		p.fills = append(p.fills, fillRun{page: v.page, count: 1, recOff: v.recOff, blk: blk, b: byte(v.n)})
		return nil
	}
	if n := versionCap(p.size); len(p.vers) >= n {
		return model.Errorf(p.s.Name, v.recOff, "more than %d page records (the page index's bound for a stream of %d bytes: %d MiB, and one record per %d bytes of stream beyond)", n, p.size, maxIndexBytes>>20, pageBytes)
	}
	v.prev = -1
	if seen {
		v.prev = prev
	}
	p.latest[v.page] = int32(len(p.vers))
	p.vers = append(p.vers, v)
	return nil
}

// blockOf finds the block holding a global page number.
func (s *Stream) blockOf(page int64) int {
	i := sort.Search(len(s.Blocks), func(i int) bool { return s.Blocks[i].base > page })
	return i - 1
}

// build turns the version index into Disks.
func (p *parser) build(cfg Config) error {
	s := p.s
	ps := s.PageSize
	main := p.mainBlock()
	if main >= 0 {
		s.Blocks[main].Phys = true
	}
	physSize := int64(0)
	if main >= 0 {
		physSize = x86PhysSize(s.Blocks[main].Length, s.LowMem)
	}
	// Final versions, in page order.
	pages := make([]int64, 0, len(p.latest))
	for pg := range p.latest {
		pages = append(pages, pg)
	}
	slices.Sort(pages)
	phys := make([]memdisk.Piece, 0, len(pages))
	regions := map[int][]memdisk.Piece{}
	for _, pg := range pages {
		vi := p.latest[pg]
		v := &p.vers[vi]
		if v.kind == kZero {
			continue
		}
		b := s.blockOf(pg)
		off := (pg - s.Blocks[b].base) * ps
		pc := p.piece(vi)
		if b == main {
			pc.Off = X86Phys(off, s.LowMem)
			phys = append(phys, pc)
		} else {
			pc.Off = off
			regions[b] = append(regions[b], pc)
		}
	}
	phys, regions = p.fillPieces(pages, main, phys, regions)
	var err error
	if s.Physical, err = memdisk.New(s.Name, p.r, physSize, phys, p.decode, cfg.Locate); err != nil {
		return err
	}
	for b := range s.Blocks {
		if b == main {
			continue
		}
		d, err := memdisk.New(s.Name, p.r, s.Blocks[b].Length, regions[b], p.decode, cfg.Locate)
		if err != nil {
			return err
		}
		s.Regions = append(s.Regions, Region{Block: s.Blocks[b].ID, Disk: d})
	}
	// Superseded versions, in stream order, counted first so that the
	// slices are made once, at their size: each version but a page's
	// last is the prev of the one after it.
	nsup := 0
	for i := range p.vers {
		if pv := p.vers[i].prev; pv >= 0 && p.vers[pv].kind != kZero && p.vers[pv].kind != kFill {
			nsup++
		}
	}
	var sup []memdisk.Piece
	if nsup > 0 {
		sup = make([]memdisk.Piece, 0, nsup)
		s.SupersededRefs = make([]PageRef, 0, nsup)
	}
	for i := range p.vers {
		v := &p.vers[i]
		if p.latest[v.page] == int32(i) || v.kind == kZero || v.kind == kFill {
			continue
		}
		b := s.blockOf(v.page)
		off := (v.page - s.Blocks[b].base) * ps
		ref := PageRef{Block: s.Blocks[b].ID, Offset: off, Phys: -1, FileOff: v.recOff}
		if b == main {
			ref.Phys = X86Phys(off, s.LowMem)
		}
		pc := p.piece(int32(i))
		pc.Off = int64(len(sup)) * ps
		sup = append(sup, pc)
		s.SupersededRefs = append(s.SupersededRefs, ref)
	}
	if s.Superseded, err = memdisk.New(s.Name, p.r, int64(len(sup))*ps, sup, p.decode, cfg.Locate); err != nil {
		return err
	}
	if s.SkippedXBZRLE > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%d XBZRLE pages skipped: invalid delta", s.SkippedXBZRLE))
	}
	if s.FillPages > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%d same-byte pages read as their byte but not scanned: one byte repeated holds no secret", s.FillPages))
	}
	if p.lostFills > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%d same-byte pages past %d runs of them read as zeros", p.lostFills, maxFillRuns))
	}
	if len(sup) > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%d superseded page versions kept as evidence (older copies of pages sent again)", len(sup)))
	}
	return nil
}

// fillPieces adds the runs of same-byte pages to the pieces of the main
// block (phys) and the other blocks (regions), leaving out the pages that
// have a version of their own (pages, sorted) and, where runs overlap, the
// later ones.
func (p *parser) fillPieces(pages []int64, main int, phys []memdisk.Piece, regions map[int][]memdisk.Piece) ([]memdisk.Piece, map[int][]memdisk.Piece) {
	s := p.s
	ps := s.PageSize
	runs := p.fills
	slices.SortStableFunc(runs, func(a, b fillRun) int { return cmp.Compare(a.page, b.page) })
	next := int64(0) // pages below it are taken by an earlier run
	for _, r := range runs {
		start, end := max(r.page, next), r.page+r.count
		for start < end {
			// Skip the pages with versions of their own.
			i, _ := slices.BinarySearch(pages, start)
			stop := end
			if i < len(pages) && pages[i] < end {
				stop = pages[i]
			}
			if stop > start {
				b := r.blk
				off := (start - s.Blocks[b].base) * ps
				n := (stop - start) * ps
				for n > 0 {
					l := min(n, memdisk.MaxPiece)
					if b == main && off < s.LowMem {
						l = min(l, s.LowMem-off) // the 4 GiB split moves the rest
					}
					pc := memdisk.Piece{Off: off, FileOff: r.recOff, Len: uint32(l), Ref: uint32(r.b), Src: model.SourceDerived, Fill: true}
					if b == main {
						pc.Off = X86Phys(off, s.LowMem)
						phys = append(phys, pc)
					} else {
						regions[b] = append(regions[b], pc)
					}
					off += l
					n -= l
				}
			}
			start = stop
			if i < len(pages) && pages[i] == start {
				start++
			}
		}
		next = max(next, end)
	}
	return phys, regions
}

// mainBlock picks the block mapped as guest-physical RAM and sets LowMem.
func (p *parser) mainBlock() int {
	s := p.s
	main := -1
	for i, b := range s.Blocks {
		if b.ID == "pc.ram" {
			main = i
		}
	}
	if main < 0 {
		// A memory backend renames the block; take the largest one.
		for i, b := range s.Blocks {
			if main < 0 || b.Length > s.Blocks[main].Length {
				main = i
			}
		}
		if main >= 0 {
			s.Notes = append(s.Notes, fmt.Sprintf("no pc.ram block: guest-physical RAM assumed to be the largest block %q", s.Blocks[main].ID))
		}
	}
	if main < 0 {
		return -1
	}
	ram := s.Blocks[main].Length
	low, ok := X86LowMem(s.Machine, ram)
	if !ok {
		low = ram
		m := s.Machine
		if m == "" {
			m = "(no configuration section)"
		}
		s.Notes = append(s.Notes, fmt.Sprintf("physical mapping unknown for machine %s: RAM block %q exposed at its block offsets", m, s.Blocks[main].ID))
	} else if ram > low {
		s.Notes = append(s.Notes, fmt.Sprintf("RAM above 0x%x mapped at 4 GiB (machine %s, default max-ram-below-4g assumed)", low, s.Machine))
	}
	s.LowMem = low
	return main
}

// piece makes a Disk piece for version vi (Off filled by the caller).
func (p *parser) piece(vi int32) memdisk.Piece {
	v := &p.vers[vi]
	pc := memdisk.Piece{FileOff: v.fileOff, FileLen: v.n, Len: uint32(p.s.PageSize), Ref: uint32(vi)}
	switch v.kind {
	case kData:
		pc.Src = model.SourceData
	case kCompressed:
		pc.Src = model.SourceCompressed
	case kFill:
		pc.Src, pc.FileOff, pc.Fill, pc.Ref = model.SourceDerived, v.recOff, true, v.n
	default:
		pc.Src = model.SourceDerived
		pc.FileOff = v.recOff
	}
	return pc
}

// decode produces the bytes of an encoded page version.
func (p *parser) decode(pc *memdisk.Piece, dst []byte) error {
	return p.version(int32(pc.Ref), dst)
}

func (p *parser) version(vi int32, dst []byte) error {
	v := &p.vers[vi]
	switch v.kind {
	case kData:
		_, err := p.r.ReadAt(dst, v.fileOff)
		return err
	case kZero:
		clear(dst)
		return nil
	case kFill:
		for i := range dst {
			dst[i] = byte(v.n)
		}
		return nil
	case kCompressed:
		buf := make([]byte, v.n)
		if _, err := p.r.ReadAt(buf, v.fileOff); err != nil {
			return err
		}
		n, err := p.zlibPages.Inflate(buf, dst)
		if err != nil {
			return fmt.Errorf("compressed page inflates to %d bytes: %w", n, err)
		}
		return nil
	case kXBZRLE:
		// Walk back to the last full version, then replay the deltas.
		chain := []int32{vi}
		base := v.prev
		for base >= 0 && p.vers[base].kind == kXBZRLE {
			if len(chain) >= maxXBZRLEChain {
				return fmt.Errorf("XBZRLE chain longer than %d", maxXBZRLEChain)
			}
			chain = append(chain, base)
			base = p.vers[base].prev
		}
		if base >= 0 {
			if err := p.version(base, dst); err != nil {
				return err
			}
		} else {
			clear(dst) // never sent before: the destination page is zero
		}
		for i := len(chain) - 1; i >= 0; i-- {
			d := &p.vers[chain[i]]
			delta := make([]byte, d.n)
			if _, err := p.r.ReadAt(delta, d.fileOff); err != nil {
				return err
			}
			if xbzrleDecode(delta, dst, len(dst)) < 0 {
				return errors.New("invalid XBZRLE delta")
			}
		}
		return nil
	}
	return fmt.Errorf("page version kind %d", v.kind)
}

// xbzrleDecode applies an XBZRLE delta to dst (migration/xbzrle.c): pairs of
// uleb128 zero-run (unchanged bytes) and non-zero-run lengths, each non-zero
// run followed by its bytes. With dst nil it only validates. It returns the
// decoded length or -1.
func xbzrleDecode(src, dst []byte, dlen int) int {
	i, d := 0, 0
	for i < len(src) {
		if len(src)-i < 2 {
			return -1
		}
		cnt, n := uleb128Small(src[i:])
		if n < 0 || (i > 0 && cnt == 0) {
			return -1
		}
		i += n
		d += cnt
		if d > dlen {
			return -1
		}
		if len(src)-i < 2 {
			return -1
		}
		cnt, n = uleb128Small(src[i:])
		if n < 0 || cnt == 0 {
			return -1
		}
		i += n
		if d+cnt > dlen || i+cnt > len(src) {
			return -1
		}
		if dst != nil {
			copy(dst[d:], src[i:i+cnt])
		}
		d += cnt
		i += cnt
	}
	return d
}

// uleb128Small decodes a 1- or 2-byte unsigned LEB128 value.
func uleb128Small(b []byte) (int, int) {
	if b[0]&0x80 == 0 {
		return int(b[0]), 1
	}
	if len(b) < 2 || b[1]&0x80 != 0 {
		return 0, -1
	}
	return int(b[0]&0x7f) | int(b[1])<<7, 2
}

// Probe reports whether head starts a QEVM stream.
func Probe(head []byte, _ io.ReaderAt, _ int64) bool {
	return len(head) >= 8 && string(head[:4]) == Magic && head[4] == 0 && head[5] == 0 && head[6] == 0 && head[7] == 3
}

// Attrs summarises the stream for a View.
func (s *Stream) Attrs() map[string]string {
	a := map[string]string{
		"machine":          s.Machine,
		"page_size":        fmt.Sprint(s.PageSize),
		"pages":            fmt.Sprint(s.Pages),
		"compressed_pages": fmt.Sprint(s.CompressedPages),
		"xbzrle_pages":     fmt.Sprint(s.XBZRLEPages),
		"skipped_xbzrle":   fmt.Sprint(s.SkippedXBZRLE),
		"superseded_pages": fmt.Sprint(len(s.SupersededRefs)),
		"device_state":     map[bool]string{true: "parsed", false: "not parsed"}[s.DeviceStateParsed],
	}
	var bl []string
	for _, b := range s.Blocks {
		bl = append(bl, fmt.Sprintf("%s:%d", b.ID, b.Length))
	}
	a["ram_blocks"] = strings.Join(bl, ",")
	if s.Machine == "" {
		delete(a, "machine")
	}
	return a
}

// tailDisk is the n bytes of the stream r at offset at, as a disk of
// their own. Where r is the host file itself, its extent names the file
// and the offset; where it is anything else (a qcow2 snapshot's VM state,
// the stream inside a libvirt save file), the stream's offsets are no
// host offsets, and the tail's bytes are its own (never taken for bytes
// already read elsewhere).
func tailDisk(r io.ReaderAt, name string, at, n int64) *model.FileDisk {
	ext := model.Extent{Offset: 0, Length: n, Source: model.SourceDerived, FileOffset: -1, FileLength: n}
	if _, ok := r.(*os.File); ok {
		ext.Source, ext.File, ext.FileOffset = model.SourceData, name, at
	}
	return &model.FileDisk{R: r, Name: name, Base: at, Len: n, Allocd: model.ExtentList{ext}}
}
