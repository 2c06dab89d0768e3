// Package errkind holds the kinds of error that decide what a failure does,
// whichever package it comes from. Each package's sentinel errors name
// their kind (New), so a caller that must decide (the activities: retry or
// not) asks errors.Is(err, errkind.Invalid) instead of listing every
// package's sentinels, and a new sentinel is classified where it is made.
package errkind

import "errors"

// Kind is a kind of error. Sentinels made by New wrap it.
type Kind struct{ name string }

func (k *Kind) Error() string { return k.name }

var (
	// Invalid: the input cannot succeed however often it is tried (a bad
	// spec, data or weights file, a training that diverged): not retried.
	Invalid = &Kind{"invalid input"}
	// OutOfMemory: the device ran out of memory; the caller may try a
	// smaller load rather than the same one.
	OutOfMemory = &Kind{"out of memory"}
)

// New makes a sentinel error of kind k whose message is msg: errors.Is
// finds both the sentinel and its kind.
func New(k *Kind, msg string) error { return &sentinel{msg: msg, kind: k} }

type sentinel struct {
	msg  string
	kind *Kind
}

func (s *sentinel) Error() string { return s.msg }
func (s *sentinel) Unwrap() error { return s.kind }

// Of is the kind of err (nil: none of these kinds).
func Of(err error) *Kind {
	for _, k := range []*Kind{OutOfMemory, Invalid} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}
