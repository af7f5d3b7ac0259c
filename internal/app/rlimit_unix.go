//go:build linux || darwin

package app

import "syscall"

// raiseFileLimit raises RLIMIT_NOFILE's soft limit to its hard limit (Go
// already raises it to one below at start-up; the standard library restores the
// original for child processes, and creditgate starts none) and returns the
// soft limit found, the one now in force and the hard limit.
func raiseFileLimit() (before, soft, hard uint64, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, 0, err
	}
	before = l.Cur
	if l.Cur < l.Max {
		raised := l
		raised.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return before, l.Cur, l.Max, err // e.g. macOS caps it below an unlimited hard limit
		}
		l = raised
	}
	return before, l.Cur, l.Max, nil
}
