//go:build !unix

package spool

import "os"

// lockDir opens path without locking: advisory locks are only implemented on
// Unix, where creditgate is deployed.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
