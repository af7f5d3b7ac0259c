package app

import (
	"fmt"
	"runtime"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/creditgate/creditgate/config"
)

// processDescriptors is what the process needs open besides its connections:
// standard streams, the two listeners, the poller, the spool's segment, done
// file, directory and lock, the config watcher, webhook and DNS connections,
// with room to spare.
const processDescriptors = 64

// connBudget shares the process's file descriptors (RLIMIT_NOFILE) between the
// listeners. The admin listener's connections, Redis's pool and the process's
// own files are set aside first; the data plane gets what is left, two
// descriptors per connection (the app's, and the upstream connection its
// request may need: the upstream pool is capped to match). So no flood of the
// data plane can leave the admin API, Redis or the spool without a descriptor.
type connBudget struct {
	// FileLimit is RLIMIT_NOFILE's soft limit in force (0: unknown, caps as
	// configured), FileLimitBefore the one found at start, FileLimitHard the
	// hard limit.
	FileLimit, FileLimitBefore, FileLimitHard uint64
	// Process, Redis and Admin are the descriptors set aside: the process's own
	// files, Redis's connections at most, admin.max_connections.
	Process, Redis, Admin int
	// Configured is limits.max_connections; Data the data plane's cap in force:
	// Configured, or lower when the descriptors left do not pay for it.
	Configured, Data int
}

// planConnections sizes the data plane's cap for a soft limit of fileLimit (0:
// unknown) once process, redis and admin descriptors are set aside. It fails
// when the limit leaves no room for a single data-plane connection.
func planConnections(fileLimit uint64, process, redis, admin, configured int) (connBudget, error) {
	b := connBudget{FileLimit: fileLimit, Process: process, Redis: redis, Admin: admin, Configured: configured, Data: configured}
	if fileLimit == 0 {
		return b, nil
	}
	left := int64(fileLimit) - int64(process+redis+admin)
	if left < 2 {
		return b, fmt.Errorf("RLIMIT_NOFILE is %d: after admin.max_connections (%d), Redis's connections (%d) and the process's own files (%d) no descriptor is left for the data plane; raise it (ulimit -n, LimitNOFILE=) or lower admin.max_connections",
			fileLimit, admin, redis, process)
	}
	if fit := int(min(left/2, int64(configured))); fit < configured {
		b.Data = fit
	}
	return b, nil
}

// redisConnections is the most connections the Redis client may open: its pool
// per node (go-redis's default is 10 per CPU), times the nodes of a cluster (the
// seeds, at least 3: a bound of what it will find), plus one per sentinel; both
// ends count for the embedded store, which runs in this process.
func redisConnections(c redis.UniversalClient, cfg config.Redis, embedded bool) int {
	pool := 10 * runtime.GOMAXPROCS(0)
	n := pool
	switch c := c.(type) {
	case *redis.Client:
		n = c.Options().PoolSize
		if cfg.SentinelMaster != "" {
			n += len(cfg.ClusterAddrs)
		}
	case *redis.ClusterClient:
		n = c.Options().PoolSize * max(len(cfg.ClusterAddrs), 3)
	}
	if embedded {
		n *= 2
	}
	return n
}

// logFields are the budget's figures for the start-up log line.
func (b connBudget) logFields() []zap.Field {
	return []zap.Field{
		zap.Uint64("nofile_soft", b.FileLimit), zap.Uint64("nofile_soft_at_start", b.FileLimitBefore),
		zap.Uint64("nofile_hard", b.FileLimitHard),
		zap.Int("reserved_process", b.Process), zap.Int("reserved_redis", b.Redis),
		zap.Int("admin_max_connections", b.Admin),
		zap.Int("max_connections", b.Data), zap.Int("max_connections_configured", b.Configured),
		zap.Int("upstream_max_connections", b.Data),
	}
}
