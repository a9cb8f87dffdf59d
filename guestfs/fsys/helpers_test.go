package fsys

import (
	"strings"
	"testing"
)

// TestJoinMaxPath: Join gives no path ("") past MaxPath bytes, nor under
// a directory that has none, so that a walk of a chain of directories
// nested past PATH_MAX copies no long path for every entry below.
func TestJoinMaxPath(t *testing.T) {
	long := "/" + strings.Repeat("d", MaxPath-3) // MaxPath-2 bytes
	for _, c := range []struct {
		dir, name, want string
	}{
		{"/", "etc", "/etc"},
		{"/etc", "passwd", "/etc/passwd"},
		{long, "x", long + "/x"}, // MaxPath bytes: still a path
		{long, "xy", ""},
		{"/", strings.Repeat("n", MaxPath-1), "/" + strings.Repeat("n", MaxPath-1)},
		{"/", strings.Repeat("n", MaxPath), ""},
		{"", "x", ""}, // under a directory past MaxPath
	} {
		if got := Join(c.dir, c.name); got != c.want {
			t.Errorf("Join(%.20q…, %.20q…) = %.20q… (%d bytes), want %.20q… (%d bytes)", c.dir, c.name, got, len(got), c.want, len(c.want))
		}
	}
}
