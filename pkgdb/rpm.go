package pkgdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strconv"
)

// The rpm database holds one header blob per installed package, the same
// header the package file carried, with the file list and the file
// digests. Three containers hold those blobs, and each reader of ours walks
// its container straight from bytes (rpm_sqlite.go, rpm_bdb.go,
// rpm_ndb.go):
//   - rpmdb.sqlite: table Packages(hnum, blob), rpm >= 4.16 (Fedora 33+,
//     RHEL 9+);
//   - Packages: a BerkeleyDB hash database (RHEL/CentOS 5 to 8, older
//     Fedora and SUSE);
//   - Packages.db: rpm's own "ndb" format (SUSE since 15 SP3 / Leap 15.3).
//
// We do not use github.com/knqyf263/go-rpmdb, which reads the same three:
// it reads containers in goroutines that panic on crafted pages (a slice
// past the page end), where no recover of ours can reach, loops without
// end on an overflow-page cycle, allocates the length a hostile header or
// NDB blob claims before checking it, and it opens host paths, which would
// make us copy the guest's database to a temporary file first. Ours are
// bounded by the file, never follow a page twice, and are fuzzed.

const (
	// maxRPMDBBytes caps the database file read into memory: 256 MiB, so
	// that a hostile one (a sparse file behind the right magic costs the
	// image nothing) keeps a scan under its 512 MiB. Real ones are
	// smaller: Red Hat shows a RHEL Packages (BerkeleyDB) of 96 MB, SUSE
	// says "nearly 30 MB" for 1 GB of /usr. Until 2026-12-07 the cap said
	// 512 MiB, but the file was read through guestfs's ReadFile, which
	// stops at 16 MiB (readBoundedLarge).
	maxRPMDBBytes = 256 << 20
	// maxRPMHeaderBytes caps one header blob: rpm itself refuses a data
	// store of 16 MiB or more (hdrchkData), plus the index.
	maxRPMHeaderBytes = 32 << 20
	// maxRPMFilesPerPackage caps the file list of one header; the largest
	// real packages (texlive, kernel-devel) have well under 100,000.
	maxRPMFilesPerPackage = 1 << 20
	// maxRPMRecords caps the records of one database.
	maxRPMRecords = 4 << 20
	// maxBadHeaderErrors is how many unreadable headers are described in
	// the error; the rest are only counted.
	maxBadHeaderErrors = 3
)

// rpmDBDirs are the places of the database, the current one first: rpm
// 4.16+ uses /usr/lib/sysimage/rpm (and Fedora and SUSE make /var/lib/rpm
// a symlink to it); older systems use /var/lib/rpm. The first directory
// holding a database is read, so a symlinked pair is read once.
var rpmDBDirs = []string{"/usr/lib/sysimage/rpm", "/var/lib/rpm"}

// rpmDBFiles are the database file names, in the order rpm's own backend
// detection prefers them when several are present.
var rpmDBFiles = []string{"rpmdb.sqlite", "Packages.db", "Packages"}

// readRPM reads rpm's database. It returns the records of every header it
// could read; when some headers were unreadable it returns those records
// together with an error that counts the others.
func readRPM(ctx context.Context, fsys FS, paths *pathBudget) ([]Record, error) {
	for _, dir := range rpmDBDirs {
		for _, name := range rpmDBFiles {
			p := path.Join(dir, name)
			b, err := readBoundedLarge(fsys, p, maxRPMDBBytes)
			if isNotExist(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("rpm: %w", err)
			}
			return rpmRecordsFromDB(ctx, p, b, paths)
		}
	}
	return nil, nil
}

// rpmRecordsFromDB reads the header blobs of one database file, whose
// container it recognises by content, not by name.
func rpmRecordsFromDB(ctx context.Context, name string, db []byte, paths *pathBudget) ([]Record, error) {
	var recs []Record
	var bad []error
	nbad := 0
	each := func(off int64, blob []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		pkg, err := parseRPMHeader(blob)
		if err == nil {
			recs, err = pkg.appendRecords(recs, paths, fmt.Sprintf("%s: header at offset %d", name, off))
		}
		if errors.Is(err, errTooManyRecords) {
			return fmt.Errorf("%s: %w", name, err)
		}
		if errors.Is(err, errPathBudget) {
			return fmt.Errorf("header at offset %d: %w", off, err)
		}
		if err != nil {
			nbad++
			if len(bad) < maxBadHeaderErrors {
				bad = append(bad, fmt.Errorf("header at offset %d: %w", off, err))
			}
		}
		return nil
	}
	var err error
	switch {
	case isSQLite(db):
		err = sqliteTableBlobs(db, "Packages", each)
	case isNDB(db):
		err = ndbBlobs(db, each)
	case isBDBHash(db):
		err = bdbHashValues(db, func(off int64, key, val []byte) error {
			// Key 0 holds rpm's next header number, not a header.
			if len(key) == 4 && binary.LittleEndian.Uint32(key) == 0 {
				return nil
			}
			return each(off, val)
		})
	default:
		return nil, fmt.Errorf("rpm: %s: not an rpm database (sqlite, ndb or BerkeleyDB hash)", name)
	}
	if err != nil {
		return recs, fmt.Errorf("rpm: %s: %w", name, err)
	}
	if nbad > 0 {
		return recs, fmt.Errorf("rpm: %s: %d package headers unreadable: %w", name, nbad, errors.Join(bad...))
	}
	return recs, nil
}

var errTooManyRecords = fmt.Errorf("more than %d files", maxRPMRecords)

// rpm header tags and types (rpm's lib/rpmtag.h).
const (
	rpmTagName           = 1000
	rpmTagVersion        = 1001
	rpmTagRelease        = 1002
	rpmTagEpoch          = 1003
	rpmTagOldFileNames   = 1027
	rpmTagFileModes      = 1030
	rpmTagFileDigests    = 1035 // once FILEMD5S
	rpmTagFileFlags      = 1037
	rpmTagDirIndexes     = 1116
	rpmTagBaseNames      = 1117
	rpmTagDirNames       = 1118
	rpmTagFileDigestAlgo = 5011

	rpmTypeInt16       = 3
	rpmTypeInt32       = 4
	rpmTypeString      = 6
	rpmTypeStringArray = 8
	rpmTypeI18NString  = 9

	rpmFileConfig = 1 << 0 // RPMFILE_CONFIG, from %config

	modeTypeMask = 0o170000
	modeDir      = 0o040000
	modeSymlink  = 0o120000
)

// rpmDigestAlgos maps RPMTAG_FILEDIGESTALGO (OpenPGP hash ids) to our
// names and digest sizes. A header without the tag has MD5 digests.
var rpmDigestAlgos = map[uint32]struct {
	name string
	size int
}{
	1:  {"md5", 16},
	2:  {"sha1", 20},
	8:  {"sha256", 32},
	9:  {"sha384", 48},
	10: {"sha512", 64},
	11: {"sha224", 28},
}

// rpmPackage is what we take from one header.
type rpmPackage struct {
	name, version, release string
	epoch                  *uint32
	digestAlgo             uint32
	dirNames, baseNames    []string
	oldFileNames           []string
	digests                []string
	dirIndexes, flags      []uint32
	modes                  []uint16
}

// evr is the package's version as rpm's %{EVR} prints it.
func (p *rpmPackage) evr() string {
	v := p.version
	if p.release != "" {
		v += "-" + p.release
	}
	if p.epoch != nil {
		v = strconv.FormatUint(uint64(*p.epoch), 10) + ":" + v
	}
	return v
}

// files checks the file list: the number of files, each a directory index
// and a base name, or a legacy full name of a header from before rpm 4.0.
func (p *rpmPackage) files() (int, error) {
	if len(p.baseNames) == 0 {
		return len(p.oldFileNames), nil
	}
	if len(p.dirIndexes) != len(p.baseNames) {
		return 0, fmt.Errorf("%d base names but %d dir indexes", len(p.baseNames), len(p.dirIndexes))
	}
	for i, di := range p.dirIndexes {
		if uint64(di) >= uint64(len(p.dirNames)) {
			return 0, fmt.Errorf("file %d: dir index %d of %d dirs", i, di, len(p.dirNames))
		}
	}
	return len(p.baseNames), nil
}

// file is file i's path in two parts, directory and base name, that files
// checked; the path is not built, since one directory name serves many
// files (pathBudget).
func (p *rpmPackage) file(i int) (dir, base string) {
	if len(p.baseNames) == 0 {
		return "", p.oldFileNames[i]
	}
	return p.dirNames[p.dirIndexes[i]], p.baseNames[i]
}

// appendRecords appends a record per file of the package that can hold
// content: directories and symlinks are left out. A path is built only if
// paths lets it (where: the database file and the header's offset in it).
func (p *rpmPackage) appendRecords(recs []Record, paths *pathBudget, where string) ([]Record, error) {
	n, err := p.files()
	if err != nil {
		return recs, err
	}
	algo, ok := rpmDigestAlgos[p.digestAlgo]
	version := p.evr()
	for i := range n {
		if i < len(p.modes) {
			if t := p.modes[i] & modeTypeMask; t == modeDir || t == modeSymlink {
				continue
			}
		}
		dir, base := p.file(i)
		lead := dir
		if lead == "" {
			lead = base
		}
		if lead == "" || lead[0] != '/' {
			continue // rpm stores absolute paths only
		}
		if len(recs) >= maxRPMRecords {
			return recs, errTooManyRecords
		}
		fit, err := paths.fit(len(dir)+len(base), func() string {
			return fmt.Sprintf("%s, file %d (%d + %d bytes)", where, i, len(dir), len(base))
		})
		if err != nil {
			return recs, err
		}
		if !fit {
			continue
		}
		o := Owner{Manager: "rpm", Package: p.name, Version: version}
		if i < len(p.flags) {
			o.Conffile = p.flags[i]&rpmFileConfig != 0
		}
		if ok && i < len(p.digests) && len(p.digests) == n {
			if sum, err := hex.DecodeString(p.digests[i]); err == nil && len(sum) == algo.size {
				o.Digest = Digest{Algo: algo.name, Sum: sum}
			}
		}
		recs = append(recs, Record{Path: path.Clean(dir + base), Owner: o})
	}
	return recs, nil
}

// parseRPMHeader reads the tags we need from one header blob as rpm stores
// it in its database: index length il and data length dl (big-endian
// uint32), il index entries {tag, type, offset, count} and dl bytes of
// data. Entries after the immutable region (the "dribble") override the
// region's, as in rpm. Every offset and count is checked against dl.
func parseRPMHeader(blob []byte) (*rpmPackage, error) {
	if len(blob) < 8 {
		return nil, fmt.Errorf("%d bytes, too short for a header", len(blob))
	}
	il := uint64(binary.BigEndian.Uint32(blob[0:4]))
	dl := uint64(binary.BigEndian.Uint32(blob[4:8]))
	if il == 0 || il > 0xffff {
		return nil, fmt.Errorf("index length %d out of range", il)
	}
	if dl >= 16<<20 {
		return nil, fmt.Errorf("data length %d over rpm's 16 MiB limit", dl)
	}
	dataStart := 8 + 16*il
	if dataStart+dl > uint64(len(blob)) {
		return nil, fmt.Errorf("index %d and data %d bytes overrun the %d-byte blob", il, dl, len(blob))
	}
	data := blob[dataStart : dataStart+dl]
	p := &rpmPackage{digestAlgo: 1}
	for i := uint64(0); i < il; i++ {
		e := blob[8+16*i:]
		tag := binary.BigEndian.Uint32(e[0:4])
		typ := binary.BigEndian.Uint32(e[4:8])
		off := uint64(binary.BigEndian.Uint32(e[8:12]))
		cnt := uint64(binary.BigEndian.Uint32(e[12:16]))
		var err error
		switch tag {
		case rpmTagName:
			p.name, err = rpmString(data, typ, off, cnt)
		case rpmTagVersion:
			p.version, err = rpmString(data, typ, off, cnt)
		case rpmTagRelease:
			p.release, err = rpmString(data, typ, off, cnt)
		case rpmTagEpoch:
			var v []uint32
			if v, err = rpmInt32s(data, typ, off, cnt); err == nil && len(v) > 0 {
				p.epoch = &v[0]
			}
		case rpmTagFileDigestAlgo:
			var v []uint32
			if v, err = rpmInt32s(data, typ, off, cnt); err == nil && len(v) > 0 {
				p.digestAlgo = v[0]
			}
		case rpmTagOldFileNames:
			p.oldFileNames, err = rpmStrings(data, typ, off, cnt)
		case rpmTagBaseNames:
			p.baseNames, err = rpmStrings(data, typ, off, cnt)
		case rpmTagDirNames:
			p.dirNames, err = rpmStrings(data, typ, off, cnt)
		case rpmTagFileDigests:
			p.digests, err = rpmStrings(data, typ, off, cnt)
		case rpmTagDirIndexes:
			p.dirIndexes, err = rpmInt32s(data, typ, off, cnt)
		case rpmTagFileFlags:
			p.flags, err = rpmInt32s(data, typ, off, cnt)
		case rpmTagFileModes:
			p.modes, err = rpmInt16s(data, typ, off, cnt)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tag %d (index entry %d): %w", tag, i, err)
		}
	}
	if p.name == "" {
		return nil, errors.New("no package name")
	}
	return p, nil
}

func rpmString(data []byte, typ uint32, off, cnt uint64) (string, error) {
	if typ != rpmTypeString && typ != rpmTypeI18NString {
		return "", fmt.Errorf("type %d, want a string", typ)
	}
	s, err := rpmStrings(data, rpmTypeStringArray, off, 1)
	if err != nil {
		return "", err
	}
	return s[0], nil
}

func rpmStrings(data []byte, typ uint32, off, cnt uint64) ([]string, error) {
	if typ != rpmTypeStringArray && typ != rpmTypeI18NString {
		return nil, fmt.Errorf("type %d, want a string array", typ)
	}
	if cnt > maxRPMFilesPerPackage {
		return nil, fmt.Errorf("%d strings, over the cap of %d", cnt, maxRPMFilesPerPackage)
	}
	if off > uint64(len(data)) || cnt > uint64(len(data))-off {
		return nil, fmt.Errorf("%d strings at offset %d overrun the %d-byte data", cnt, off, len(data))
	}
	out := make([]string, 0, cnt)
	rest := data[off:]
	for range cnt {
		n := bytes.IndexByte(rest, 0)
		if n < 0 {
			return nil, fmt.Errorf("string at data offset %d has no end", len(data)-len(rest))
		}
		out = append(out, string(rest[:n]))
		rest = rest[n+1:]
	}
	return out, nil
}

func rpmInt32s(data []byte, typ uint32, off, cnt uint64) ([]uint32, error) {
	return rpmInts(data, typ, rpmTypeInt32, off, cnt, 4, binary.BigEndian.Uint32)
}

func rpmInt16s(data []byte, typ uint32, off, cnt uint64) ([]uint16, error) {
	return rpmInts(data, typ, rpmTypeInt16, off, cnt, 2, binary.BigEndian.Uint16)
}

// rpmInts reads cnt big-endian integers of size bytes at off.
func rpmInts[T uint16 | uint32](data []byte, typ, want uint32, off, cnt, size uint64, get func([]byte) T) ([]T, error) {
	if typ != want {
		return nil, fmt.Errorf("type %d, want %d", typ, want)
	}
	if cnt > maxRPMFilesPerPackage || off > uint64(len(data)) || size*cnt > uint64(len(data))-off {
		return nil, fmt.Errorf("%d integers of %d bytes at offset %d overrun the %d-byte data", cnt, size, off, len(data))
	}
	out := make([]T, cnt)
	for i := range out {
		out[i] = get(data[off+size*uint64(i):])
	}
	return out, nil
}
