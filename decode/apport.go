package decode

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
)

// Ubuntu's crash reports (apport's /var/crash/*.crash) are text fields,
// "Key: value", continued on lines that start with a space, and binary
// fields, "Key: base64", whose continuation lines each hold the base64 of
// one piece of a gzip stream (the header naming the key, then deflate
// blocks, the last with gzip's trailer): a crashed process's core
// (CoreDump), its memory maps, a package's files. The text fields are the
// raw scan's; each binary field is a member, named by its key, whose bytes
// are the gzip stream the lines decode to.

// magicApport starts every crash report apport writes (ProblemType is
// always its first key).
var magicApport = []byte("ProblemType: ")

// maxApportKeyLine bounds a key line that is read whole (longer ones are
// text values, skipped).
const maxApportKeyLine = 256

// apportMembers walks a crash report's binary fields. It ends at the
// first line that is no field of one.
func (w *walker) apportMembers(s *src, depth int) error {
	for n := 0; ; {
		if err := w.check(); err != nil {
			return err
		}
		line, err := apportKeyLine(s)
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		key, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(key) == 0 || bytes.ContainsAny(key, " \t") {
			return nil // not a report's field: the report ended
		}
		if string(bytes.TrimSpace(value)) != "base64" {
			if err := skipApportLines(s); err != nil {
				return err
			}
			continue
		}
		if w.tooMany(n) {
			return nil
		}
		n++
		f := &apportField{s: s}
		if err := memberError(w.member(Apport, cleanName(string(key)), s.pos(), -1, f, depth)); err != nil {
			return err
		}
		if err := f.skip(); err != nil {
			return err
		}
	}
}

// apportKeyLine reads a line that starts a field, without its newline:
// whole up to maxApportKeyLine bytes, its start only when longer (a long
// text value, whose rest is skipped). io.EOF at the report's end.
func apportKeyLine(s *src) ([]byte, error) {
	var line []byte
	for {
		c, err := s.ReadByte()
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				return line, nil
			}
			return nil, err
		}
		if c == '\n' {
			return line, nil
		}
		if len(line) < maxApportKeyLine {
			line = append(line, c)
		}
	}
}

// skipApportLines skips the continuation lines that follow, raw.
func skipApportLines(s *src) error {
	for {
		b, err := s.Peek(1)
		if err != nil || b[0] != ' ' {
			return nil // the next field, or the end
		}
		if err := skipLine(s); err != nil {
			return err
		}
	}
}

// skipLine discards up to and including the next newline.
func skipLine(s *src) error {
	for {
		b, err := s.Peek(4096)
		if len(b) == 0 {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			_, err := s.Discard(int64(i + 1))
			return err
		}
		if _, err := s.Discard(int64(len(b))); err != nil {
			return err
		}
	}
}

// apportField reads a binary field's bytes: each continuation line's
// base64 decoded on its own (apport pads each), in order.
type apportField struct {
	s    *src
	line *apportLine
	cur  io.Reader
	done bool
}

func (f *apportField) Read(p []byte) (int, error) {
	for {
		if f.done {
			return 0, io.EOF
		}
		if f.cur == nil {
			b, err := f.s.Peek(1)
			if err != nil || b[0] != ' ' {
				f.done = true
				continue
			}
			if _, err := f.s.Discard(1); err != nil {
				return 0, err
			}
			f.line = &apportLine{s: f.s}
			f.cur = base64.NewDecoder(base64.StdEncoding, f.line)
		}
		n, err := f.cur.Read(p)
		if n > 0 {
			return n, nil
		}
		switch {
		case err == io.EOF:
			f.cur = nil // the line ended
		case err != nil:
			// Counted as the report's corruption, like a damaged
			// stream's: what decoded before it is scanned.
			return 0, &streamError{kind: Apport, err: fmt.Errorf("base64 at offset %d: %w", f.s.pos(), err)}
		}
	}
}

// skip discards the rest of the field: the current line's rest, then
// every continuation line, raw.
func (f *apportField) skip() error {
	if f.cur != nil && !f.line.eol {
		if err := skipLine(f.s); err != nil {
			return err
		}
	}
	f.cur, f.done = nil, true
	return skipApportLines(f.s)
}

// apportLine reads one line's bytes, to its newline (consumed, not
// returned).
type apportLine struct {
	s   *src
	eol bool
}

func (l *apportLine) Read(p []byte) (int, error) {
	if l.eol {
		return 0, io.EOF
	}
	b, err := l.s.Peek(min(len(p), 4096))
	if len(b) == 0 {
		if err == io.EOF {
			l.eol = true
		}
		return 0, err
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		n := copy(p, b[:i])
		l.eol = true
		_, err := l.s.Discard(int64(i + 1))
		return n, err
	}
	n := copy(p, b)
	_, err = l.s.Discard(int64(n))
	return n, err
}
