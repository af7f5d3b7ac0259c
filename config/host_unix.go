//go:build unix

package config

import "syscall"

// onRootFS compares the device of dir (or its nearest existing parent) with the
// device of "/": a volume or any other mount has its own.
func onRootFS(dir string) (bool, error) {
	d, err := nearestExisting(dir)
	if err != nil {
		return false, err
	}
	var st, root syscall.Stat_t
	if err := syscall.Stat(d, &st); err != nil {
		return false, err
	}
	if err := syscall.Stat("/", &root); err != nil {
		return false, err
	}
	return st.Dev == root.Dev, nil
}
