package pkgdb

import (
	"errors"
	"fmt"
)

// File paths. Most managers record a file as a directory and a name in it
// (rpm's DIRNAMES and BASENAMES, apk's F: and R: lines, a cache directory
// and a digest, a site directory and a RECORD row), and the readers join
// the two for each file. Without a bound on either, one long directory in
// a small database became a copy per file: an rpmdb.sqlite of 1 MiB, whose
// one header has a DIRNAMES entry of 1 MiB and 1,000 BASENAMES in it, made
// 1 GiB of paths (2.8 GB resident, 5.6 s); an apk database of 1 MB (an F:
// line of 1 MiB, then 2,000 R: lines) 5.8 GB.
//
// So every reader asks its pathBudget before it builds a path, from the
// lengths of the parts:
//   - a path longer than PATH_MAX (4,096 bytes, which count the final NUL:
//     Linux's open(2) takes no longer name) is no file that any package
//     installs: it is skipped and counted, and Read says how many, with
//     the place of the first;
//   - the bytes of the paths kept by the readers of one filesystem are
//     charged to one budget of maxPathBytes, past which the reader that
//     meets it stops with an error that names the file and the offset, as
//     at its other caps, and Read runs no reader after it (each is named
//     in an error).
//
// maxPathBytes leaves room for many more files than Read keeps: Read keeps
// 1 Mi records, and the paths of a Debian system's 123,000 packaged files
// average 59 bytes (at most 195). It is no larger because the rpm
// database (up to 256 MiB, read whole) is held while its paths are built,
// and a scan stays under 512 MiB.
const (
	maxPathLen   = 4096
	maxPathBytes = 128 << 20
)

// errPathBudget is the error of a reader that stopped at its budget.
var errPathBudget = errors.New("file paths over the budget")

// pathBudget is what the readers of one filesystem may still build.
type pathBudget struct {
	total, left int64
	spent       bool   // a path did not fit: the readers stop
	long        int    // paths refused for their length, since the last skipped
	first       string // where the first of them was
}

func newPathBudget() *pathBudget { return newPathBudgetOf(maxPathBytes) }

func newPathBudgetOf(n int64) *pathBudget { return &pathBudget{total: n, left: n} }

// fit says whether a path of n bytes may be built, and charges it. A path
// over maxPathLen is refused and counted (false, nil); where, called for
// the first one only, says where it is (file and offset). Past the budget
// the answer is false and an error (errPathBudget): the reader stops.
func (b *pathBudget) fit(n int, where func() string) (bool, error) {
	if n > maxPathLen {
		if b.long == 0 {
			b.first = where()
		}
		b.long++
		return false, nil
	}
	if int64(n) > b.left {
		b.spent = true
		return false, fmt.Errorf("%w: %d bytes in all, the rest are not read", errPathBudget, b.total)
	}
	b.left -= int64(n)
	return true, nil
}

// skipped is the note for the paths that fit refused for their length
// since the last call, or nil; the count starts again.
func (b *pathBudget) skipped() error {
	if b.long == 0 {
		return nil
	}
	err := fmt.Errorf("%d file paths longer than %d bytes skipped, the first at %s", b.long, maxPathLen, b.first)
	b.long, b.first = 0, ""
	return err
}

// truncated is s cut at n bytes, for a message that names a path or a key
// of any length, saying how long it was.
func truncated(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:n], len(s))
}
