package pkgdb

import "context"

// readDpkg reads dpkg: /var/lib/dpkg/status, info/*.md5sums and the conffiles.
// Not implemented yet: it reports no records.
func readDpkg(ctx context.Context, fsys FS) ([]Record, error) { return nil, nil }
