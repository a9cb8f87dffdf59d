package main

import (
	"path/filepath"
	"strings"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
)

// backingRoots is the repeatable --backing-root flag. Unlike stringList it
// does not split on commas: a directory name may hold one.
type backingRoots []string

func (b *backingRoots) String() string { return strings.Join(*b, ",") }
func (b *backingRoots) Set(v string) error {
	*b = append(*b, v)
	return nil
}

func addBackingRoots(fs *flagSet) *backingRoots {
	b := &backingRoots{}
	fs.Var(b, "backing-root", "also open the files an image names (backing and data files, extents, parents) under `DIR` (repeatable); "+
		"by default only those in the image's own directory, or the scanned directory, are opened")
	return b
}

// check refuses a --backing-root that is not an existing directory.
func (b backingRoots) check() error {
	for _, d := range b {
		if _, err := hostfile.NewRoots(d); err != nil {
			return usagef("--backing-root %s: %v", d, err)
		}
	}
	return nil
}

// options opens an image named on the command line with its own directory
// and the --backing-root directories as the allowed roots. Where the
// image's directory does not exist, formats.Open fails on the image itself.
func (b backingRoots) options(image string, o model.Options) model.Options {
	o, _ = b.optionsLogged(image, o)
	return o
}

// optionsLogged is options with a log of the host files the image asks
// for: what a command that writes a file must not write over.
func (b backingRoots) optionsLogged(image string, o model.Options) (model.Options, *hostfile.Log) {
	log := &hostfile.Log{}
	if roots, err := hostfile.NewRoots(append([]string{filepath.Dir(image)}, b...)...); err == nil {
		o.Opener = roots.WithLog(log)
	}
	return o, log
}
