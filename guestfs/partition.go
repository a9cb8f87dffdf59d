package guestfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// This is a small, bounded GPT/MBR reader of our own rather than go-diskfs's
// partition packages: go-diskfs's gpt.Read allocates the partition entry
// array from unchecked header fields (entries × entry size, both 32-bit, so
// a hostile header asks for gigabytes), and its mbr.Read does not follow
// extended partitions, so logical partitions (p5, p6...) would be missed.

const (
	maxGPTEntries     = 4096
	maxGPTEntrySize   = 4096
	maxLogicalParts   = 128
	mbrSignatureOff   = 510
	mbrEntriesOff     = 446
	gptSignature      = "EFI PART"
	gptMinHeaderSize  = 92
	mbrTypeGPTProtect = 0xEE
)

// tableEntry is one partition as the table describes it.
type tableEntry struct {
	Index int    // 1-based number: GPT slot, MBR 1-4, logical 5+
	Start int64  // bytes
	Size  int64  // bytes
	Type  string // "gpt:Linux filesystem", "mbr:0x83"
	Name  string // GPT partition name
}

// partitionTable is what readPartitionTable found.
type partitionTable struct {
	Scheme  string // "gpt", "mbr" or "" when the disk has no table
	Entries []tableEntry
	Notes   []string
}

// readPartitionTable reads a GPT (512- or 4096-byte sectors) or an MBR with
// its extended partition chain. A disk without a valid table yields an empty
// scheme and no error.
func readPartitionTable(r io.ReaderAt, size int64) (partitionTable, error) {
	var t partitionTable
	if size < 512 {
		return t, nil
	}
	mbr := make([]byte, 512)
	if err := fsys.ReadFull(r, mbr, 0); err != nil {
		return t, fmt.Errorf("read MBR: %w", err)
	}
	if binary.LittleEndian.Uint16(mbr[mbrSignatureOff:]) != 0xAA55 {
		return t, nil
	}
	protective := false
	for i := 0; i < 4; i++ {
		if mbr[mbrEntriesOff+16*i+4] == mbrTypeGPTProtect {
			protective = true
		}
	}
	if protective {
		var gptErr error
		for _, ss := range []int64{512, 4096} {
			entries, notes, err := readGPT(r, size, ss)
			if err == nil {
				t.Scheme, t.Entries, t.Notes = "gpt", entries, notes
				return t, nil
			}
			gptErr = errors.Join(gptErr, err)
		}
		t.Notes = append(t.Notes, fmt.Sprintf("protective MBR but no readable GPT: %v", gptErr))
		return t, nil
	}
	entries, notes, ok := readMBR(r, size, mbr)
	if ok {
		t.Scheme, t.Entries, t.Notes = "mbr", entries, notes
	}
	return t, nil
}

// validMBREntries rejects boot sectors (a FAT or NTFS volume without a
// partition table also ends in 55 AA) whose "entries" are code or BPB data.
func validMBREntries(mbr []byte, size int64) bool {
	any := false
	for i := 0; i < 4; i++ {
		e := mbr[mbrEntriesOff+16*i:]
		if e[0] != 0 && e[0] != 0x80 {
			return false
		}
		typ := e[4]
		start := int64(binary.LittleEndian.Uint32(e[8:])) * 512
		n := int64(binary.LittleEndian.Uint32(e[12:])) * 512
		if typ == 0 {
			continue
		}
		if n == 0 || start == 0 || start >= size {
			return false
		}
		any = true
	}
	return any
}

func readMBR(r io.ReaderAt, size int64, mbr []byte) ([]tableEntry, []string, bool) {
	if !validMBREntries(mbr, size) {
		return nil, nil, false
	}
	var out []tableEntry
	var notes []string
	var extStart int64 = -1
	for i := 0; i < 4; i++ {
		e := mbr[mbrEntriesOff+16*i:]
		typ := e[4]
		if typ == 0 {
			continue
		}
		start := int64(binary.LittleEndian.Uint32(e[8:])) * 512
		n := int64(binary.LittleEndian.Uint32(e[12:])) * 512
		if isExtended(typ) {
			if extStart < 0 {
				extStart = start
			}
			continue
		}
		out = append(out, tableEntry{Index: i + 1, Start: start, Size: n, Type: fmt.Sprintf("mbr:0x%02x", typ)})
	}
	if extStart > 0 {
		logical, note := readEBRChain(r, size, extStart)
		out = append(out, logical...)
		if note != "" {
			notes = append(notes, note)
		}
	}
	return out, notes, true
}

func isExtended(t byte) bool { return t == 0x05 || t == 0x0F || t == 0x85 }

// readEBRChain follows the linked list of extended boot records. Each EBR's
// first entry is a logical partition relative to the EBR; its second entry
// links the next EBR relative to the start of the extended partition.
func readEBRChain(r io.ReaderAt, size, extStart int64) ([]tableEntry, string) {
	var out []tableEntry
	seen := map[int64]bool{}
	ebr := make([]byte, 512)
	cur := extStart
	for idx := 5; ; idx++ {
		if len(out) >= maxLogicalParts {
			return out, fmt.Sprintf("extended partition: more than %d logical partitions, rest ignored", maxLogicalParts)
		}
		if seen[cur] || cur <= 0 || cur >= size {
			if seen[cur] {
				return out, fmt.Sprintf("extended partition: EBR chain loops at byte %d", cur)
			}
			return out, fmt.Sprintf("extended partition: EBR at byte %d outside the disk", cur)
		}
		seen[cur] = true
		if err := fsys.ReadFull(r, ebr, cur); err != nil {
			return out, fmt.Sprintf("extended partition: read EBR at byte %d: %v", cur, err)
		}
		if binary.LittleEndian.Uint16(ebr[mbrSignatureOff:]) != 0xAA55 {
			return out, fmt.Sprintf("extended partition: no EBR signature at byte %d", cur)
		}
		e1, e2 := ebr[mbrEntriesOff:], ebr[mbrEntriesOff+16:]
		if typ := e1[4]; typ != 0 {
			start := cur + int64(binary.LittleEndian.Uint32(e1[8:]))*512
			n := int64(binary.LittleEndian.Uint32(e1[12:])) * 512
			out = append(out, tableEntry{Index: idx, Start: start, Size: n, Type: fmt.Sprintf("mbr:0x%02x", typ)})
		}
		if e2[4] == 0 || !isExtended(e2[4]) {
			return out, ""
		}
		cur = extStart + int64(binary.LittleEndian.Uint32(e2[8:]))*512
	}
}

// readGPT reads the primary GPT header (falling back to the backup header in
// the disk's last sector) and its entry array, both CRC-checked.
func readGPT(r io.ReaderAt, size, sector int64) ([]tableEntry, []string, error) {
	var notes []string
	hdr, err := readGPTHeader(r, size, sector, sector)
	if err != nil {
		backup, berr := readGPTHeader(r, size, sector, (size/sector-1)*sector)
		if berr != nil {
			return nil, nil, fmt.Errorf("GPT (%d-byte sectors): primary: %v; backup: %v", sector, err, berr)
		}
		notes = append(notes, fmt.Sprintf("primary GPT unreadable (%v), used the backup", err))
		hdr = backup
	}
	le := binary.LittleEndian
	entriesLBA := int64(le.Uint64(hdr[72:]))
	count := int64(le.Uint32(hdr[80:]))
	esize := int64(le.Uint32(hdr[84:]))
	if count > maxGPTEntries || esize < 128 || esize > maxGPTEntrySize || esize%8 != 0 {
		return nil, nil, fmt.Errorf("GPT: %d entries of %d bytes", count, esize)
	}
	if entriesLBA <= 0 || entriesLBA > size/sector || count*esize > size-entriesLBA*sector {
		return nil, nil, fmt.Errorf("GPT: entry array at LBA %d outside the disk", entriesLBA)
	}
	arr := make([]byte, count*esize)
	if err := fsys.ReadFull(r, arr, entriesLBA*sector); err != nil {
		return nil, nil, fmt.Errorf("GPT: read entries: %w", err)
	}
	if crc32.ChecksumIEEE(arr) != le.Uint32(hdr[88:]) {
		notes = append(notes, "GPT entry array checksum mismatch; entries used anyway")
	}
	var out []tableEntry
	for i := int64(0); i < count; i++ {
		e := arr[i*esize : (i+1)*esize]
		typ := guidString(e[0:16])
		if typ == "00000000-0000-0000-0000-000000000000" {
			continue
		}
		first, last := le.Uint64(e[32:]), le.Uint64(e[40:])
		if last < first || first > uint64(size/sector) {
			notes = append(notes, fmt.Sprintf("GPT entry %d: LBAs %d-%d invalid, skipped", i+1, first, last))
			continue
		}
		out = append(out, tableEntry{
			Index: int(i) + 1,
			Start: int64(first) * sector,
			Size:  int64(last-first+1) * sector,
			Type:  "gpt:" + gptTypeName(typ),
			Name:  utf16Name(e[56:128]),
		})
	}
	return out, notes, nil
}

func readGPTHeader(r io.ReaderAt, size, sector, off int64) ([]byte, error) {
	if off <= 0 || off+sector > size {
		return nil, errors.New("header outside the disk")
	}
	hdr := make([]byte, sector)
	if err := fsys.ReadFull(r, hdr, off); err != nil {
		return nil, err
	}
	if string(hdr[:8]) != gptSignature {
		return nil, errors.New("no EFI PART signature")
	}
	hs := int64(binary.LittleEndian.Uint32(hdr[12:]))
	if hs < gptMinHeaderSize || hs > sector {
		return nil, fmt.Errorf("header size %d", hs)
	}
	want := binary.LittleEndian.Uint32(hdr[16:])
	c := append([]byte(nil), hdr[:hs]...)
	clear(c[16:20])
	if crc32.ChecksumIEEE(c) != want {
		return nil, errors.New("header checksum mismatch")
	}
	return hdr, nil
}

// guidString formats a mixed-endian GPT GUID.
func guidString(b []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08X-%04X-%04X-%04X-%012X", le.Uint32(b[0:]), le.Uint16(b[4:]), le.Uint16(b[6:]),
		binary.BigEndian.Uint16(b[8:]), b[10:16])
}

func utf16Name(b []byte) string {
	var sb strings.Builder
	for i := 0; i+1 < len(b); i += 2 {
		c := rune(binary.LittleEndian.Uint16(b[i:]))
		if c == 0 {
			break
		}
		if c < 0x20 || (c >= 0xD800 && c < 0xE000) {
			c = '?'
		}
		sb.WriteRune(c)
	}
	return sb.String()
}

var gptTypes = map[string]string{
	"0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
	"C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EFI System",
	"21686148-6449-6E6F-744E-656564454649": "BIOS boot",
	"0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
	"E6D6D379-F507-44C2-A23C-238F2A3DF928": "Linux LVM",
	"A19D880F-05FC-4D3B-A006-743F0F84911E": "Linux RAID",
	"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux root (x86-64)",
	"44479540-F297-41B2-9AF7-D131D5F0458A": "Linux root (x86)",
	"B921B045-1DF0-41C3-AF44-4C6F280D3FAE": "Linux root (ARM64)",
	"933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "Linux home",
	"BC13C2FF-59E6-4262-A352-B275FD6F7172": "Linux extended boot",
	"CA7D7CCB-63ED-4C53-861C-1742536059CC": "Linux LUKS",
	"EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
	"E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "Microsoft reserved",
	"DE94BBA4-06D1-4D40-A16A-BFD50179D6AC": "Windows recovery",
	"6A898CC3-1DD2-11B2-99A6-080020736631": "ZFS",
}

func gptTypeName(guid string) string {
	if n, ok := gptTypes[guid]; ok {
		return n
	}
	return guid
}
