package pkgdb

import "context"

// readRPM reads rpm: the rpmdb (rpmdb.sqlite, or BerkeleyDB / NDB Packages).
// Not implemented yet: it reports no records.
func readRPM(ctx context.Context, fsys FS) ([]Record, error) { return nil, nil }
