package pkgdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// A read-only walk of one SQLite table, from the file's bytes, after
// https://www.sqlite.org/fileformat2.html: the schema table on page 1 names
// the table's root page; the table b-tree's interior pages (type 5) lead to
// its leaf pages (type 13), whose cells hold each row's record, spilling
// into a chain of overflow pages when the row is large (an rpm header is
// usually larger than a page). A general SQL engine would do the same at
// the cost of a cgo or transpiled-C dependency and of a temporary copy of
// the file; this walk is all rpm's database needs.
//
// Rows are read from the main database file only: transactions still in
// the write-ahead log (rpmdb.sqlite-wal, left by a crash) are not seen.

var sqliteMagic = []byte("SQLite format 3\x00")

func isSQLite(b []byte) bool { return bytes.HasPrefix(b, sqliteMagic) }

type sqliteDB struct {
	b        []byte
	pageSize int
	usable   int // page size less the reserved bytes at each page's end
	npages   uint32
}

// sqliteTableBlobs calls fn with the file offset of each row of table and
// the row's first BLOB column.
func sqliteTableBlobs(b []byte, table string, fn func(off int64, blob []byte) error) error {
	db, err := openSQLite(b)
	if err != nil {
		return err
	}
	root := uint32(0)
	err = db.walkTable(1, func(off int64, rec []byte) error {
		cols, err := sqliteColumns(rec)
		if err != nil {
			return fmt.Errorf("schema row at offset %d: %w", off, err)
		}
		// sqlite_schema(type, name, tbl_name, rootpage, sql)
		if len(cols) >= 4 && cols[0].text() == "table" && cols[1].text() == table {
			n, ok := cols[3].int()
			if !ok || n < 1 || n > int64(db.npages) {
				return fmt.Errorf("schema row at offset %d: bad root page for table %s", off, table)
			}
			root = uint32(n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if root == 0 {
		return fmt.Errorf("no table %s", table)
	}
	return db.walkTable(root, func(off int64, rec []byte) error {
		cols, err := sqliteColumns(rec)
		if err != nil {
			return fmt.Errorf("row at offset %d: %w", off, err)
		}
		for _, c := range cols {
			if c.isBlob() {
				return fn(off, c.raw)
			}
		}
		return fmt.Errorf("row at offset %d: no blob column", off)
	})
}

func openSQLite(b []byte) (*sqliteDB, error) {
	if len(b) < 100 || !isSQLite(b) {
		return nil, errors.New("not an SQLite 3 database")
	}
	ps := int(binary.BigEndian.Uint16(b[16:18]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps&(ps-1) != 0 {
		return nil, fmt.Errorf("offset 16: bad page size %d", ps)
	}
	usable := ps - int(b[20])
	if usable < 480 {
		return nil, fmt.Errorf("offset 20: %d reserved bytes leave %d usable per page", b[20], usable)
	}
	if enc := binary.BigEndian.Uint32(b[56:60]); enc != 1 && enc != 0 {
		return nil, fmt.Errorf("offset 56: text encoding %d, only UTF-8 is read", enc)
	}
	return &sqliteDB{b: b, pageSize: ps, usable: usable, npages: uint32(len(b) / ps)}, nil
}

func (db *sqliteDB) page(n uint32) ([]byte, error) {
	if n < 1 || n > db.npages {
		return nil, fmt.Errorf("page %d outside the file's %d pages", n, db.npages)
	}
	off := int64(n-1) * int64(db.pageSize)
	return db.b[off : off+int64(db.pageSize)], nil
}

func (db *sqliteDB) offset(n uint32, in int) int64 {
	return int64(n-1)*int64(db.pageSize) + int64(in)
}

// walkTable calls fn with each record of the table b-tree rooted at root,
// in rowid order. No page is visited twice, so a cycle ends the walk with
// an error, and the walk's length is bounded by the file.
func (db *sqliteDB) walkTable(root uint32, fn func(off int64, rec []byte) error) error {
	seen := make([]uint64, db.npages/64+1)
	stack := []uint32{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		pg, err := db.page(n)
		if err != nil {
			return err
		}
		if seen[n/64]&(1<<(n%64)) != 0 {
			return fmt.Errorf("page %d reached twice: a cycle", n)
		}
		seen[n/64] |= 1 << (n % 64)
		h := 0
		if n == 1 {
			h = 100 // the file header precedes page 1's b-tree header
		}
		if h+8 > len(pg) {
			return fmt.Errorf("offset %d: page too small", db.offset(n, h))
		}
		kind := pg[h]
		ncells := int(binary.BigEndian.Uint16(pg[h+3:]))
		hlen := 8
		if kind == 5 {
			hlen = 12
		}
		ptrs := h + hlen
		if ptrs+2*ncells > db.usable {
			return fmt.Errorf("offset %d: %d cells overrun the page", db.offset(n, h), ncells)
		}
		switch kind {
		case 5: // table interior: push the children last-first, so they pop in order
			stack = append(stack, binary.BigEndian.Uint32(pg[h+8:]))
			for i := ncells - 1; i >= 0; i-- {
				c := int(binary.BigEndian.Uint16(pg[ptrs+2*i:]))
				if c+4 > db.usable {
					return fmt.Errorf("offset %d: cell pointer %d outside the page", db.offset(n, ptrs+2*i), c)
				}
				stack = append(stack, binary.BigEndian.Uint32(pg[c:]))
			}
		case 13: // table leaf
			for i := range ncells {
				c := int(binary.BigEndian.Uint16(pg[ptrs+2*i:]))
				rec, err := db.leafPayload(n, pg, c)
				if err != nil {
					return err
				}
				if err := fn(db.offset(n, c), rec); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("offset %d: page type %d in a table b-tree", db.offset(n, h), kind)
		}
	}
	return nil
}

// leafPayload returns the record of the table-leaf cell at c on page n,
// gathering its overflow chain when it has one.
func (db *sqliteDB) leafPayload(n uint32, pg []byte, c int) ([]byte, error) {
	if c >= db.usable {
		return nil, fmt.Errorf("offset %d: cell outside the page", db.offset(n, c))
	}
	cell := pg[c:db.usable]
	plen, k := sqliteVarint(cell)
	if k == 0 {
		return nil, fmt.Errorf("offset %d: bad payload length", db.offset(n, c))
	}
	_, k2 := sqliteVarint(cell[k:]) // rowid
	if k2 == 0 {
		return nil, fmt.Errorf("offset %d: bad rowid", db.offset(n, c))
	}
	cell = cell[k+k2:]
	if plen > uint64(len(db.b)) || plen > maxRPMHeaderBytes {
		return nil, fmt.Errorf("offset %d: payload of %d bytes", db.offset(n, c), plen)
	}
	// How much of the payload is on the page (fileformat2 §1.6).
	u := uint64(db.usable)
	x := u - 35
	local := plen
	if plen > x {
		m := (u-12)*32/255 - 23
		local = m + (plen-m)%(u-4)
		if local > x {
			local = m
		}
	}
	if local > uint64(len(cell)) || (local < plen && local+4 > uint64(len(cell))) {
		return nil, fmt.Errorf("offset %d: payload overruns the page", db.offset(n, c))
	}
	if local == plen {
		return cell[:plen], nil
	}
	out := make([]byte, 0, plen)
	out = append(out, cell[:local]...)
	next := binary.BigEndian.Uint32(cell[local:])
	// Each overflow page holds usable-4 bytes after its next-page number,
	// so the chain is as long as the payload needs and no longer.
	for uint64(len(out)) < plen {
		op, err := db.page(next)
		if err != nil {
			return nil, fmt.Errorf("overflow of cell at offset %d: %w", db.offset(n, c), err)
		}
		take := min(plen-uint64(len(out)), u-4)
		out = append(out, op[4:4+take]...)
		next = binary.BigEndian.Uint32(op)
	}
	return out, nil
}

// sqliteVarint decodes a big-endian base-128 varint of up to 9 bytes; k is
// 0 when b ends first.
func sqliteVarint(b []byte) (v uint64, k int) {
	for i := 0; i < 9 && i < len(b); i++ {
		if i == 8 {
			return v<<8 | uint64(b[i]), 9
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

type sqliteValue struct {
	serial uint64
	raw    []byte
}

func (v sqliteValue) isBlob() bool { return v.serial >= 12 && v.serial%2 == 0 }

func (v sqliteValue) text() string {
	if v.serial >= 13 && v.serial%2 == 1 {
		return string(v.raw)
	}
	return ""
}

func (v sqliteValue) int() (int64, bool) {
	switch v.serial {
	case 8:
		return 0, true
	case 9:
		return 1, true
	case 1, 2, 3, 4, 5, 6:
		var x int64
		if len(v.raw) > 0 && v.raw[0]&0x80 != 0 {
			x = -1
		}
		for _, c := range v.raw {
			x = x<<8 | int64(c)
		}
		return x, true
	}
	return 0, false
}

// sqliteColumns splits a record into its columns: a header of serial types
// (after its own length), then the values.
func sqliteColumns(rec []byte) ([]sqliteValue, error) {
	hlen, k := sqliteVarint(rec)
	if k == 0 || hlen < uint64(k) || hlen > uint64(len(rec)) {
		return nil, errors.New("bad record header")
	}
	hdr := rec[k:hlen]
	body := rec[hlen:]
	var cols []sqliteValue
	for len(hdr) > 0 {
		st, k := sqliteVarint(hdr)
		if k == 0 {
			return nil, errors.New("bad serial type")
		}
		hdr = hdr[k:]
		var size uint64
		switch {
		case st <= 4:
			size = st
		case st == 5:
			size = 6
		case st == 6 || st == 7:
			size = 8
		case st == 8 || st == 9:
			size = 0
		case st >= 12:
			size = (st - 12) / 2
		default:
			return nil, fmt.Errorf("reserved serial type %d", st)
		}
		if size > uint64(len(body)) {
			return nil, errors.New("column overruns the record")
		}
		cols = append(cols, sqliteValue{serial: st, raw: body[:size]})
		body = body[size:]
	}
	return cols, nil
}
