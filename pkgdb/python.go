package pkgdb

import "context"

// readPythonRecords reads Python: *.dist-info/RECORD files (sha256 per file).
// Not implemented yet: it reports no records.
func readPythonRecords(ctx context.Context, fsys FS) ([]Record, error) { return nil, nil }
