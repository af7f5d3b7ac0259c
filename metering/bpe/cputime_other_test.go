//go:build !linux

package bpe

import "time"

// threadCPU is not measured outside Linux; benchmarks then omit their cpu metrics.
func threadCPU() time.Duration { return 0 }
