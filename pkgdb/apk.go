package pkgdb

import "context"

// readAPK reads apk: /lib/apk/db/installed, with Q1 SHA-1 checksums.
// Not implemented yet: it reports no records.
func readAPK(ctx context.Context, fsys FS) ([]Record, error) { return nil, nil }
