package outfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestCheckRefusesInputs(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "images", "web.qcow2")
	other := filepath.Join(dir, "reports")
	for _, d := range []string{filepath.Dir(img), other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(img, []byte("QFI\xfb"), 0o644); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(other, "hard.json")
	if err := os.Link(img, hard); err != nil {
		t.Fatal(err)
	}
	sym := filepath.Join(other, "sym.json")
	if err := os.Symlink(img, sym); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(img, "r.json")
	tests := []struct {
		name   string
		out    string
		inputs []string
		refuse bool   // a *Refused error
		errHas string // any other error
	}{
		{name: "a new file elsewhere", out: filepath.Join(other, "r.json"), inputs: []string{img}},
		{name: "the target itself", out: img, inputs: []string{img}, refuse: true},
		{name: "the target through ..", out: filepath.Join(other, "..", "images", "web.qcow2"), inputs: []string{img}, refuse: true},
		{name: "a hard link to the target", out: hard, inputs: []string{img}, refuse: true},
		{name: "a symlink to the target", out: sym, inputs: []string{img}, refuse: true},
		{name: "inside the scanned directory", out: filepath.Join(dir, "images", "r.json"), inputs: []string{filepath.Dir(img)}, refuse: true},
		{name: "deep inside the scanned directory", out: filepath.Join(dir, "images", "r.json"), inputs: []string{dir}, refuse: true},
		{name: "next to the scanned directory", out: filepath.Join(other, "r.json"), inputs: []string{filepath.Dir(img)}},
		{name: "directory missing", out: filepath.Join(dir, "nonexistent", "r.json"), errHas: "no such file"},
		{name: "directory is a file", out: notDir, errHas: "not a directory"},
		{name: "output is a directory", out: other, errHas: "is a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(tc.out, tc.inputs)
			var ref *Refused
			switch {
			case tc.refuse && !errors.As(err, &ref):
				t.Fatalf("Check = %v, want a refusal", err)
			case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
				t.Fatalf("Check = %v, want %q", err, tc.errHas)
			case !tc.refuse && tc.errHas == "" && err != nil:
				t.Fatalf("Check = %v", err)
			}
			// Write re-checks: an input found later is refused too.
			if !tc.refuse && tc.errHas == "" {
				o, _ := Check(tc.out, nil)
				if err := o.Write([]string{filepath.Dir(tc.out)}, func(*os.File) error { return nil }); !errors.As(err, &ref) {
					t.Fatalf("Write into an input directory = %v", err)
				}
			}
		})
	}
	if b, err := os.ReadFile(img); err != nil || string(b) != "QFI\xfb" {
		t.Fatalf("input changed: %q %v", b, err)
	}
}

func TestWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	kept := filepath.Join(dir, "baseline.json")
	if err := os.WriteFile(kept, []byte("yesterday"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		fail     bool
		want     string
		wantMode os.FileMode
	}{
		{name: "new file: 0644 less the umask", path: filepath.Join(dir, "new.json"), want: "today", wantMode: 0o644},
		{name: "replacing keeps the mode", path: kept, want: "today", wantMode: 0o600},
		{name: "a failed write leaves the old file", path: kept, fail: true, want: "today", wantMode: 0o600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Check(tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = o.Write(nil, func(f *os.File) error {
				if _, err := f.WriteString("to"); err != nil {
					return err
				}
				if tc.fail {
					return errors.New("disk full")
				}
				_, err := f.WriteString("day")
				return err
			})
			if tc.fail != (err != nil) {
				t.Fatalf("Write = %v", err)
			}
			b, _ := os.ReadFile(tc.path)
			st, _ := os.Stat(tc.path)
			if string(b) != tc.want || st.Mode().Perm() != tc.wantMode {
				t.Fatalf("%s: %q mode %v, want %q %v", tc.path, b, st.Mode().Perm(), tc.want, tc.wantMode)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Fatalf("temporary file left: %s", e.Name())
				}
			}
		})
	}
}

// TestWriteToDevicesAndPipes: a character device or a pipe is written in
// place: /dev/null stays a character device (renaming a report over it
// had made it a regular file, which every later write on the machine then
// filled), and a FIFO's reader gets the report. A block device is refused
// before any work starts.
func TestWriteToDevicesAndPipes(t *testing.T) {
	dir := t.TempDir()
	write := func(o *Output) error {
		return o.Write(nil, func(f *os.File) error {
			_, err := f.WriteString("today")
			return err
		})
	}

	// A node of /dev/null's own device in the test's directory, so that
	// a regression replaces that node, not the machine's /dev/null.
	null := filepath.Join(dir, "null")
	if err := unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatalf("mknod (the suite runs as root): %v", err)
	}
	o, err := Check(null, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(o); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(null); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("the null device after the write: %v, %v", st.Mode(), err)
	}
	os.Remove(null)

	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(fifo) // opens for reading: the writer's open returns
		got <- string(b)
	}()
	if o, err = Check(fifo, nil); err != nil {
		t.Fatal(err)
	}
	if err := write(o); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-got:
		if g != "today" {
			t.Errorf("the FIFO's reader got %q", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the FIFO's reader got nothing in 10 s: the FIFO was not opened for writing")
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO after the write: %v, %v", st.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d entries in the FIFO's directory, want the FIFO alone", len(ents))
	}

	disk := filepath.Join(dir, "loop")
	if err := unix.Mknod(disk, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))); err != nil {
		t.Fatalf("mknod (the suite runs as root): %v", err)
	}
	if _, err := Check(disk, nil); err == nil || !strings.Contains(err.Error(), "block device") {
		t.Errorf("Check of a block device: %v", err)
	}
}

// TestWriteThroughSymlink: an output that is a symbolic link to a file
// (a report kept elsewhere, or /dev/stdout when standard output is a
// file) stays a link, and the file it names gets the report, atomically
// in that file's directory.
func TestWriteThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	linked := filepath.Join(dir, "reports", "latest.json")
	if err := os.MkdirAll(filepath.Dir(linked), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(linked, []byte("yesterday"), 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "report.json")
	if err := os.Symlink(linked, link); err != nil {
		t.Fatal(err)
	}
	o, err := Check(link, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Write(nil, func(f *os.File) error { _, err := f.WriteString("today"); return err }); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link after the write: %v, %v", st.Mode(), err)
	}
	b, _ := os.ReadFile(linked)
	st, _ := os.Stat(linked)
	if string(b) != "today" || st.Mode().Perm() != 0o640 {
		t.Errorf("the linked file: %q, mode %v", b, st.Mode().Perm())
	}
	for _, d := range []string{dir, filepath.Dir(linked)} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("temporary file left in %s: %s", d, e.Name())
			}
		}
	}
}
