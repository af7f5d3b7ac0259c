package bpe

import (
	"syscall"
	"time"
)

// threadCPU returns the CPU time the calling OS thread has used, so benchmarks can
// report throughput that does not depend on what else runs on a shared machine.
func threadCPU() time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
