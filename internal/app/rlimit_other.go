//go:build !(linux || darwin)

package app

// raiseFileLimit reports no limit where creditgate does not read RLIMIT_NOFILE
// (it is deployed on Linux): the connection caps are then used as configured.
func raiseFileLimit() (before, soft, hard uint64, err error) { return 0, 0, 0, nil }
