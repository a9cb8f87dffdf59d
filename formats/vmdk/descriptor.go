package vmdk

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Bounds on descriptor text, after QEMU's vmdk_read_desc (at most 1 MiB is
// ever read) and the sizes real products write.
const (
	maxDescriptorSize = 1 << 20
	maxExtents        = 32768 // a 62 TiB twoGbMaxExtent disk needs ~31k
	maxDDBEntries     = 1024
	maxValueLen       = 4096
	noParentCID       = 0xffffffff
)

// Descriptor is a parsed VMDK descriptor (VMware Virtual Disk Format 1.1/5.0,
// "The Descriptor File").
type Descriptor struct {
	Version            int
	CID                uint32
	HasCID             bool
	ParentCID          uint32
	HasParentCID       bool
	CreateType         string
	ParentFileNameHint string
	ParentHintPos      int // byte offset of the parentFileNameHint line
	Extents            []ExtentLine
	DDB                map[string]string
}

// ExtentLine is one line of the extent description:
// ACCESS SECTORS TYPE ["FILE" [OFFSET]].
type ExtentLine struct {
	Access  string // RW, RDONLY or NOACCESS
	Sectors int64
	Type    string // FLAT, SPARSE, ZERO, VMFS, VMFSSPARSE, SESPARSE, VMFSRDM, VMFSRAW
	File    string // as written; "" for ZERO
	Offset  int64  // in sectors, for FLAT
	Pos     int    // byte offset of the line in the descriptor text
}

// DescriptorError is a malformed descriptor; Pos is the byte offset of the
// offending line within the descriptor text.
type DescriptorError struct {
	Pos int
	Msg string
}

func (e *DescriptorError) Error() string { return e.Msg }

// ParseDescriptor parses descriptor text. It tolerates comments, blank lines,
// CRLF line ends, NUL or space padding and unquoted values (OVF Tool writes
// createType=streamOptimized). Unknown lines are ignored, as VMware does;
// malformed extent lines are errors.
func ParseDescriptor(b []byte) (*Descriptor, error) {
	if len(b) > maxDescriptorSize {
		return nil, &DescriptorError{Pos: maxDescriptorSize, Msg: fmt.Sprintf("descriptor larger than %d bytes", maxDescriptorSize)}
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i] // NUL padding ends the text
	}
	d := &Descriptor{}
	pos := 0
	for pos < len(b) {
		end := bytes.IndexByte(b[pos:], '\n')
		var raw []byte
		next := len(b)
		if end >= 0 {
			raw = b[pos : pos+end]
			next = pos + end + 1
		} else {
			raw = b[pos:]
		}
		linePos := pos
		pos = next
		line := strings.TrimSpace(string(raw))
		if line == "" || line[0] == '#' {
			continue
		}
		first := line
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			first = line[:i]
		}
		switch first {
		case "RW", "RDONLY", "NOACCESS":
			if len(d.Extents) >= maxExtents {
				return nil, &DescriptorError{Pos: linePos, Msg: fmt.Sprintf("more than %d extents", maxExtents)}
			}
			e, err := parseExtentLine(line)
			if err != nil {
				return nil, &DescriptorError{Pos: linePos, Msg: err.Error()}
			}
			e.Pos = linePos
			d.Extents = append(d.Extents, e)
			continue
		}
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			continue
		}
		key := strings.TrimSpace(line[:eq])
		val := unquote(strings.TrimSpace(line[eq+1:]))
		if len(val) > maxValueLen {
			return nil, &DescriptorError{Pos: linePos, Msg: fmt.Sprintf("value of %.40q longer than %d bytes", key, maxValueLen)}
		}
		switch key {
		case "version":
			v, err := strconv.Atoi(val)
			if err != nil || v < 1 || v > 3 {
				return nil, &DescriptorError{Pos: linePos, Msg: fmt.Sprintf("unsupported descriptor version %.20q", val)}
			}
			d.Version = v
		case "CID":
			v, err := parseCID(val)
			if err != nil {
				return nil, &DescriptorError{Pos: linePos, Msg: "bad CID: " + err.Error()}
			}
			d.CID, d.HasCID = v, true
		case "parentCID":
			v, err := parseCID(val)
			if err != nil {
				return nil, &DescriptorError{Pos: linePos, Msg: "bad parentCID: " + err.Error()}
			}
			d.ParentCID, d.HasParentCID = v, true
		case "createType":
			d.CreateType = val
		case "parentFileNameHint":
			d.ParentFileNameHint, d.ParentHintPos = val, linePos
		default:
			if strings.HasPrefix(key, "ddb.") {
				if d.DDB == nil {
					d.DDB = map[string]string{}
				}
				if len(d.DDB) < maxDDBEntries {
					d.DDB[key] = val
				}
			}
		}
	}
	return d, nil
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' {
		if j := strings.IndexByte(s[1:], '"'); j >= 0 {
			return s[1 : 1+j]
		}
	}
	// Unquoted: stop at a trailing comment.
	if i := strings.Index(s, " #"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}

// parseCID reads leading hex digits, as QEMU's sscanf("%x") does.
func parseCID(s string) (uint32, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	n := 0
	for n < len(s) && n < 8 && isHex(s[n]) {
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%.20q is not hexadecimal", s)
	}
	v, err := strconv.ParseUint(s[:n], 16, 32)
	return uint32(v), err
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// maxExtentSectors bounds one extent line; 2^40 sectors is 512 TiB, beyond
// any VMDK (seSparse, the largest, stops short of 64 TiB).
const maxExtentSectors = int64(1) << 40

func parseExtentLine(line string) (ExtentLine, error) {
	var e ExtentLine
	f := strings.Fields(line)
	if len(f) < 3 {
		return e, fmt.Errorf("invalid extent line: want ACCESS SECTORS TYPE")
	}
	e.Access = f[0]
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || n <= 0 || n > maxExtentSectors {
		return e, fmt.Errorf("invalid extent size %.24q", f[1])
	}
	e.Sectors = n
	e.Type = f[2]
	switch e.Type {
	case "FLAT", "SPARSE", "ZERO", "VMFS", "VMFSSPARSE", "SESPARSE", "VMFSRDM", "VMFSRAW":
	default:
		return e, fmt.Errorf("unknown extent type %.24q", e.Type)
	}
	// The file name is quoted and may contain spaces.
	q1 := strings.IndexByte(line, '"')
	if q1 < 0 {
		if e.Type == "ZERO" {
			return e, nil
		}
		return e, fmt.Errorf("extent of type %s has no quoted file name", e.Type)
	}
	q2 := strings.IndexByte(line[q1+1:], '"')
	if q2 < 0 {
		return e, fmt.Errorf("unterminated extent file name")
	}
	e.File = line[q1+1 : q1+1+q2]
	if e.File == "" && e.Type != "ZERO" {
		return e, fmt.Errorf("empty extent file name")
	}
	rest := strings.Fields(line[q1+1+q2+1:])
	if len(rest) > 0 {
		off, err := strconv.ParseInt(rest[0], 10, 64)
		if err != nil || off < 0 || off > maxExtentSectors*64 {
			return e, fmt.Errorf("invalid extent offset %.24q", rest[0])
		}
		if e.Type != "FLAT" && e.Type != "VMFS" && off != 0 {
			return e, fmt.Errorf("offset given for a %s extent", e.Type)
		}
		e.Offset = off
	}
	return e, nil
}
