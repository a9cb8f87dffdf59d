package kdump

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// reencodeSnappy copies the normal-form zlib kdump src to dst with its
// zlib pages re-encoded as snappy (flag 4), the form `makedumpfile -p`
// and QEMU's `dump-guest-memory -s` write. Neither can here: Debian's
// QEMU says "kdump-snappy is not available now" and Debian's makedumpfile
// is built with snappy disabled. So the snappy bytes come from Google's
// libsnappy through Debian's python3-snappy (snappy.compress is
// snappy::RawCompress, the raw block format both tools write per page).
// Pages snappy does not shrink stay zlib, as makedumpfile stores them
// uncompressed.
func reencodeSnappy(t *testing.T, src, dst string) []lzoPage {
	t.Helper()
	py := pythonWithSnappy(t)
	return reencodePages(t, src, dst, flagSnappy, func(dir string, ats []int64, bs int64) map[int64][]byte {
		testutil.Run(t, py, "-c", `import os, sys, snappy
for f in os.listdir(sys.argv[1]):
    p = os.path.join(sys.argv[1], f)
    open(p + ".sz", "wb").write(snappy.compress(open(p, "rb").read()))`, dir)
		out := map[int64][]byte{}
		for _, at := range ats {
			z := testutil.FileSnapshot(t, filepath.Join(dir, fmt.Sprintf("%08d.sz", at)))
			if int64(len(z)) < bs {
				out[at] = z
			}
		}
		return out
	})
}

// pythonWithSnappy returns a python3 that imports snappy (python3-snappy,
// installed by scripts/install-test-deps.sh): Debian's own interpreter
// when the one on PATH (a pyenv, say) lacks Debian's modules.
func pythonWithSnappy(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import snappy").Run() == nil {
			return py
		}
	}
	testutil.Missing(t, "python3 module snappy (Debian package python3-snappy)")
	return ""
}
