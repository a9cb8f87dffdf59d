// Package outfile writes imgaudit's output files (reports, extracted views)
// so that they never destroy evidence: an output path that is an input of
// the run (a target, a file inside a scanned directory, a backing file, a
// hard link to any of them) is refused, the output's directory is checked
// before the long work starts, and the file is replaced atomically (a
// temporary file in the same directory, fsync, rename), so that a crash
// never leaves half a report over yesterday's baseline. A character
// device or a pipe (/dev/null, /dev/stdout, a FIFO) is written in place,
// and a block device is refused.
package outfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Output is an output path that passed Check.
type Output struct {
	path string // as given
	// target is the file a regular output's rename replaces: path with
	// its symbolic links resolved, so that a link to a report (or
	// /dev/stdout, when standard output is a file) stays a link and
	// the file it names gets the report; dir is target's directory.
	target string
	dir    string
	// stream is set for a character device or a pipe (/dev/null,
	// /dev/stdout, a FIFO, a shell's >(command)): written in place,
	// since renaming a file over it would replace /dev/null with a
	// regular file, and a pipe's reader would never see the report.
	stream bool
}

// Refused is the error for an output path that would overwrite an input.
type Refused struct {
	Output, Input string
	Dir           bool // Input is a directory Output lies in
}

func (e *Refused) Error() string {
	if e.Dir {
		return fmt.Sprintf("refusing to write %s: it lies inside %s, which this run scans", e.Output, e.Input)
	}
	return fmt.Sprintf("refusing to write %s: it is %s, which this run reads", e.Output, e.Input)
}

// Check validates an output path before the work starts: its directory
// exists and is writable, and it is none of inputs (files or directories
// the run reads) nor inside an input directory. Files are compared by
// device and inode (so a hard link or a symlink to an input is caught) and
// by cleaned real path.
func Check(path string, inputs []string) (*Output, error) {
	if path == "" {
		return nil, errors.New("empty output path")
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", path, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("output %s: %s is not a directory", path, dir)
	}
	if err := Refuse(path, inputs); err != nil {
		return nil, err
	}
	target := path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		target, dir = r, filepath.Dir(r)
	}
	if st, err := os.Stat(path); err == nil {
		switch m := st.Mode(); {
		case m.IsDir():
			return nil, fmt.Errorf("output %s is a directory", path)
		case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0:
			// A disk: a report written there would destroy it.
			return nil, fmt.Errorf("output %s is a block device", path)
		case m&(fs.ModeCharDevice|fs.ModeNamedPipe) != 0:
			return &Output{path: path, target: path, dir: dir, stream: true}, nil
		case !m.IsRegular():
			return nil, fmt.Errorf("output %s is neither a regular file, a character device nor a pipe (%s)", path, m.Type())
		}
	}
	// Writable: the only sure test is to create a file there (access(2)
	// is not what root or ACLs see).
	f, err := createTemp(dir, filepath.Base(path))
	if err != nil {
		return nil, fmt.Errorf("output %s: directory not writable: %w", path, err)
	}
	f.Close()
	os.Remove(f.Name())
	return &Output{path: path, target: target, dir: dir}, nil
}

// Refuse returns a *Refused error when path is one of inputs, the same
// file as one of them, or lies inside an input that is a directory.
// Inputs that do not exist are ignored.
func Refuse(path string, inputs []string) error {
	outReal := realPath(path)
	outSt, outErr := os.Stat(path)
	for _, in := range inputs {
		if in == "" {
			continue
		}
		inSt, err := os.Stat(in)
		if err != nil {
			continue
		}
		inReal := realPath(in)
		if inSt.IsDir() {
			if within(inReal, outReal) {
				return &Refused{Output: path, Input: in, Dir: true}
			}
			continue
		}
		if outReal == inReal || outErr == nil && os.SameFile(outSt, inSt) {
			return &Refused{Output: path, Input: in}
		}
	}
	return nil
}

// Refuse is the package's Refuse for this output, and nil for a nil
// Output (no output file): a scanner.Options.Opened callback.
func (o *Output) Refuse(inputs []string) error {
	if o == nil {
		return nil
	}
	return Refuse(o.path, inputs)
}

// Path returns the output path.
func (o *Output) Path() string { return o.path }

// Stream reports whether the output is a character device or a pipe,
// written in place from its start: it cannot be sought or truncated.
func (o *Output) Stream() bool { return o.stream }

// Write replaces the output file with what write writes, atomically: into
// a new file in the same directory, synced, then renamed over the path
// (whose permission bits it keeps; a new file gets 0644 less the umask).
// inputs are checked again first: files that the run opened and that Check
// could not know (backing files found during a scan). On any error the
// output path is left as it was.
//
// A character device or a pipe (Check decided) is written in place
// instead: there is no file to replace.
func (o *Output) Write(inputs []string, write func(f *os.File) error) (err error) {
	if err := Refuse(o.path, inputs); err != nil {
		return err
	}
	if o.stream {
		f, err := os.OpenFile(o.path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("writing %s: %w", o.path, err)
		}
		if err := write(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", o.path, err)
		}
		return nil
	}
	f, err := createTemp(o.dir, filepath.Base(o.target))
	if err != nil {
		return fmt.Errorf("writing %s: %w", o.path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if st, err := os.Stat(o.target); err == nil {
		if err := f.Chmod(st.Mode().Perm()); err != nil {
			return fmt.Errorf("writing %s: %w", o.path, err)
		}
	}
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", o.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", o.path, err)
	}
	if err := os.Rename(f.Name(), o.target); err != nil {
		return fmt.Errorf("writing %s: %w", o.path, err)
	}
	// The rename itself is durable once the directory is synced; a
	// directory that cannot be synced (some network file systems) still
	// holds a whole file.
	if d, err := os.Open(o.dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// createTemp creates a new file next to the output, mode 0644 less the
// umask (os.CreateTemp would make it 0600).
func createTemp(dir, base string) (*os.File, error) {
	for range 100 {
		var b [8]byte
		rand.Read(b[:])
		name := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("no unused temporary name in %s", dir)
}

func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	} else if r, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		p = filepath.Join(r, filepath.Base(p)) // a new file in an existing directory
	}
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	return filepath.Clean(p)
}

// within reports whether p is dir or lies under it.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
