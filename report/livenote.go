package report

// liveSectionNote is the LIVE ONLY section's subtitle. Live findings are
// in allocated files only when every live location has a path and the
// state "allocated"; a location with the state "unknown" lies where no
// filesystem could be read (an unsupported filesystem, encrypted or
// unpartitioned space), so the subtitle must not claim a file there.
func liveSectionNote(live []*Finding) string {
	for _, f := range live {
		for _, l := range f.Locations {
			if l.Exposure == ExposureLive && (l.State != StateAllocated || l.Path == "") {
				return "in the current state: in allocated files, or where no filesystem could be read (state unknown, no path)"
			}
		}
	}
	return "in allocated files of the current state"
}
