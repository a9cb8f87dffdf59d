package model

import (
	"errors"
	"fmt"
)

// FormatError reports malformed or unsupported input, naming the file and the
// byte offset where the problem was found (like debug/elf.FormatError).
type FormatError struct {
	File   string // host file
	Offset int64  // byte offset in File; -1 when not tied to one place
	Msg    string
	Err    error // underlying cause, if any
}

func (e *FormatError) Error() string {
	s := e.File
	if e.Offset >= 0 {
		s += fmt.Sprintf(": offset %d (0x%x)", e.Offset, e.Offset)
	}
	s += ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }

// Errorf builds a FormatError.
func Errorf(file string, off int64, format string, args ...any) error {
	return &FormatError{File: file, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// Wrapf builds a FormatError around a cause.
func Wrapf(err error, file string, off int64, format string, args ...any) error {
	return &FormatError{File: file, Offset: off, Msg: fmt.Sprintf(format, args...), Err: err}
}

// ErrUnknownFormat is returned (wrapped) when no reader recognises a file.
var ErrUnknownFormat = errors.New("unknown image format")

// ErrEncrypted is returned (wrapped) for encrypted images; imgaudit never
// tries to guess keys.
var ErrEncrypted = errors.New("image is encrypted")

// ErrUnsupported is returned (wrapped) for valid but unsupported features.
var ErrUnsupported = errors.New("unsupported")
