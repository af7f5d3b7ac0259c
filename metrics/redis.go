package metrics

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Labels of Redis round trips that are not single commands.
const (
	pipelineCommand = "pipeline" // a pipeline or MULTI/EXEC transaction
	dialCommand     = "dial"     // opening a connection
)

// Kinds of Redis errors (the kind label of creditgate_redis_errors_total).
const (
	ErrorKindTimeout = "timeout" // no answer in time, or no free pooled connection
	ErrorKindNetwork = "network" // connection refused, reset, closed
	ErrorKindServer  = "server"  // an error reply (LOADING, READONLY, a script error…)
	ErrorKindDial    = "dial"    // a new connection could not be opened
)

// maxCommandLabelLen bounds the command label; Redis command names are short.
const maxCommandLabelLen = 32

// RedisHook returns a go-redis hook that times every command and pipeline into
// creditgate_redis_command_duration_seconds and counts failures in
// creditgate_redis_errors_total. Add it with client.AddHook before use.
func (m *Metrics) RedisHook() redis.Hook { return redisHook{m: m} }

type redisHook struct{ m *Metrics }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil && !errors.Is(err, context.Canceled) {
			h.m.redisErrors.WithLabelValues(dialCommand, ErrorKindDial).Inc()
		}
		return conn, err
	}
}

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.observe(commandLabel(cmd.Name()), time.Since(start), err)
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.observe(pipelineCommand, time.Since(start), pipelineFailure(cmds, err))
		return err
	}
}

// pipelineFailure is a pipeline's error as a failure of Redis: a command's error
// reply counts unless it comes from go-redis's connection handshake, which sends
// CLIENT SETINFO and ignores its refusal (Redis before 7.2, miniredis); counting
// it would report an error for every new connection.
func pipelineFailure(cmds []redis.Cmder, err error) error {
	var reply redis.Error
	if err == nil || !errors.As(err, &reply) {
		return err
	}
	for _, c := range cmds {
		if c.Err() != nil && !isSetInfo(c) {
			return c.Err()
		}
	}
	return nil
}

func isSetInfo(c redis.Cmder) bool {
	args := c.Args()
	if len(args) < 2 || !strings.EqualFold(c.Name(), "client") {
		return false
	}
	sub, ok := args[1].(string)
	return ok && strings.EqualFold(sub, "setinfo")
}

func (h redisHook) observe(command string, took time.Duration, err error) {
	h.m.redisLatency.WithLabelValues(command).Observe(took.Seconds())
	if kind := errorKind(err); kind != "" {
		h.m.redisErrors.WithLabelValues(command, kind).Inc()
	}
}

// errorKind classifies a Redis round trip's error; "" means it is no failure of
// Redis: success, a missing key (redis.Nil), NOSCRIPT (go-redis then loads the
// script with EVAL), or a caller that gave up (context.Canceled).
func errorKind(err error) string {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return ""
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrPoolTimeout) || errors.As(err, &ne) && ne.Timeout() {
		return ErrorKindTimeout
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		if strings.HasPrefix(err.Error(), "NOSCRIPT") {
			return ""
		}
		return ErrorKindServer
	}
	return ErrorKindNetwork
}

// commandLabel keeps command names that look like Redis command names.
func commandLabel(name string) string {
	if name == "" || len(name) > maxCommandLabelLen {
		return OtherLabel
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return OtherLabel
		}
	}
	return name
}
