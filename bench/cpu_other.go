//go:build !unix

package main

import "time"

// processCPU is unknown here: CPU-per-request figures read as 0.
func processCPU() time.Duration { return 0 }
