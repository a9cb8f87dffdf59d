// Package luks recognises LUKS1 and LUKS2 volumes for package guestfs. Their
// contents are encrypted, so imgaudit never sees them: what it reports is
// the version, the cipher and the key-slot count, and where the key
// material lies. Key-slot areas hold anti-forensic split key material,
// random-looking bytes that must not be scanned as secrets: guestfs
// reports them as excluded ranges, whose findings the scanner drops.
package luks

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

const (
	magic          = "LUKS\xba\xbe"
	luks1Slots     = 8
	luks1SlotOff   = 208
	luks1SlotLen   = 48
	luks1Active    = 0x00AC71F3
	luks2BinHeader = 4096
	// maxJSON bounds the LUKS2 JSON area read (cryptsetup allows 4 MiB).
	maxJSON = 4 << 20
	// maxLUKSBytes bounds offsets and sizes in LUKS2 metadata (JSON
	// numbers are strings of up to 64 bits).
	maxLUKSBytes = 1 << 62
)

var be = binary.BigEndian

// Probe reports the LUKS magic.
func Probe(head []byte) bool { return len(head) >= 6 && string(head[:6]) == magic }

// Header is what a LUKS header says, in the terms the report needs.
type Header struct {
	Version  int
	Cipher   string // "aes-xts-plain64"
	KeySlots int    // active key slots
	// KeyMaterial lists the [start, end) byte ranges of the key-slot
	// areas, relative to the volume's first byte.
	KeyMaterial [][2]int64
	// DataOffset is where the encrypted data starts.
	DataOffset int64
}

// Note says, in words, what the header tells.
func (h *Header) Note() string {
	slots := "key slots"
	if h.KeySlots == 1 {
		slots = "key slot"
	}
	return fmt.Sprintf("encrypted: contents not visible (LUKS%d, cipher %s, %d %s)", h.Version, h.Cipher, h.KeySlots, slots)
}

// Read parses the LUKS header of the volume r[0:size). name is for errors.
func Read(r io.ReaderAt, size int64, name string) (*Header, error) {
	b := make([]byte, 1024)
	if size < int64(len(b)) {
		return nil, model.Errorf(name, 0, "luks: %d-byte volume", size)
	}
	if err := fsys.ReadFull(r, b, 0); err != nil {
		return nil, model.Wrapf(err, name, 0, "luks: read header")
	}
	if !Probe(b) {
		return nil, model.Errorf(name, 0, "luks: no LUKS magic")
	}
	switch v := be.Uint16(b[6:]); v {
	case 1:
		return luks1(b, size, name)
	case 2:
		return luks2(r, b, size, name)
	default:
		return nil, model.Errorf(name, 6, "luks: version %d", v)
	}
}

func cString(b []byte) string {
	if i := slices.Index(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// luks1 reads the binary LUKS1 header: cipher name and mode, payload
// offset, key bytes and eight key slots.
func luks1(b []byte, size int64, name string) (*Header, error) {
	h := &Header{Version: 1}
	h.Cipher = cString(b[8:40])
	if mode := cString(b[40:72]); mode != "" {
		h.Cipher += "-" + mode
	}
	h.DataOffset = int64(be.Uint32(b[104:])) * 512
	keyBytes := int64(be.Uint32(b[108:]))
	if keyBytes <= 0 || keyBytes > 1024 {
		return nil, model.Errorf(name, 108, "luks: %d key bytes", keyBytes)
	}
	for i := 0; i < luks1Slots; i++ {
		s := b[luks1SlotOff+i*luks1SlotLen:]
		if be.Uint32(s) == luks1Active {
			h.KeySlots++
		}
		// Disabled slots keep their area: it may hold old key material.
		off := int64(be.Uint32(s[40:])) * 512
		stripes := int64(be.Uint32(s[44:]))
		if off == 0 || stripes <= 0 || stripes > 1<<20 {
			continue
		}
		// Past the end of a truncated volume the area is clipped.
		if end := min(off+(keyBytes*stripes+511)/512*512, size); off < end {
			h.KeyMaterial = append(h.KeyMaterial, [2]int64{off, end})
		}
	}
	return h, nil
}

// luks2JSON is the part of the LUKS2 JSON metadata the report needs.
type luks2JSON struct {
	Keyslots map[string]struct {
		Area struct {
			Offset string `json:"offset"`
			Size   string `json:"size"`
		} `json:"area"`
	} `json:"keyslots"`
	Segments map[string]struct {
		Offset     string `json:"offset"`
		Encryption string `json:"encryption"`
	} `json:"segments"`
	Config struct {
		KeyslotsSize string `json:"keyslots_size"`
	} `json:"config"`
}

// luks2 reads the binary LUKS2 header (its size) and the JSON area after
// it: key slots with their areas, segments with their cipher.
func luks2(r io.ReaderAt, b []byte, size int64, name string) (*Header, error) {
	hdrSize := int64(be.Uint64(b[8:]))
	if hdrSize <= luks2BinHeader || hdrSize-luks2BinHeader > maxJSON || hdrSize > size {
		return nil, model.Errorf(name, 8, "luks: LUKS2 header size %d", hdrSize)
	}
	js := make([]byte, hdrSize-luks2BinHeader)
	if err := fsys.ReadFull(r, js, luks2BinHeader); err != nil {
		return nil, model.Wrapf(err, name, luks2BinHeader, "luks: read JSON area")
	}
	if i := slices.Index(js, 0); i >= 0 {
		js = js[:i]
	}
	var meta luks2JSON
	if err := json.Unmarshal(js, &meta); err != nil {
		return nil, model.Wrapf(err, name, luks2BinHeader, "luks: JSON metadata")
	}
	h := &Header{Version: 2, KeySlots: len(meta.Keyslots)}
	num := func(s string) (int64, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > maxLUKSBytes {
			return 0, errors.Join(err, fmt.Errorf("byte count %q", s))
		}
		return n, nil
	}
	// area adds [off, off+n), clipped to a truncated volume.
	area := func(off, n int64) {
		if end := min(off+n, size); off < end {
			h.KeyMaterial = append(h.KeyMaterial, [2]int64{off, end})
		}
	}
	// The key-slot region follows the two copies of the header; its
	// size is in the config. Without it, each key slot's own area.
	if ks := meta.Config.KeyslotsSize; ks != "" {
		n, err := num(ks)
		if err != nil {
			return nil, model.Errorf(name, luks2BinHeader, "luks: keyslots_size: %v", err)
		}
		area(2*hdrSize, n)
	} else {
		for _, id := range sortedKeys(meta.Keyslots) {
			k := meta.Keyslots[id]
			off, err1 := num(k.Area.Offset)
			n, err2 := num(k.Area.Size)
			if err := errors.Join(err1, err2); err != nil {
				return nil, model.Errorf(name, luks2BinHeader, "luks: key slot %s area: %v", id, err)
			}
			area(off, n)
		}
	}
	var ciphers []string
	for _, id := range sortedKeys(meta.Segments) {
		s := meta.Segments[id]
		if s.Encryption != "" && !slices.Contains(ciphers, s.Encryption) {
			ciphers = append(ciphers, s.Encryption)
		}
		if off, err := num(s.Offset); err == nil && off <= size && (h.DataOffset == 0 || off < h.DataOffset) {
			h.DataOffset = off
		}
	}
	h.Cipher = strings.Join(ciphers, ", ")
	if h.Cipher == "" {
		h.Cipher = "unknown"
	}
	slices.SortFunc(h.KeyMaterial, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	return h, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
