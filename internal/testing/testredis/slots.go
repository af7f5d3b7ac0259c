package testredis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Slot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of the key, or of
// its hash tag (the text between the first '{' and the next '}', when not
// empty), modulo 16384.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % 16384)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), as Redis Cluster uses.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// SlotGuard is a go-redis hook that fails, before sending it, any script call
// (EVAL, EVALSHA, FCALL and their read-only forms) and any multi-key command whose
// keys hash to more than one cluster slot. Redis Cluster refuses such commands
// with CROSSSLOT; a single Redis runs them happily, so without the guard a
// cross-slot bug would only show on a cluster. Every client this package hands
// out carries it; add it to other clients with AddHook.
func SlotGuard() redis.Hook { return slotGuard{} }

type slotGuard struct{}

func (slotGuard) DialHook(next redis.DialHook) redis.DialHook { return next }

func (slotGuard) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := checkSlots(cmd); err != nil {
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (slotGuard) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if err := checkSlots(cmd); err != nil {
				cmd.SetErr(err)
				return err
			}
		}
		return next(ctx, cmds)
	}
}

// checkSlots returns a CROSSSLOT error when cmd's keys span two slots.
func checkSlots(cmd redis.Cmder) error {
	keys := commandKeys(cmd.Args())
	for i := 1; i < len(keys); i++ {
		if a, b := Slot(keys[0]), Slot(keys[i]); a != b {
			return fmt.Errorf("CROSSSLOT Keys in request don't hash to the same slot (testredis.SlotGuard: %s has %q in slot %d and %q in slot %d)",
				strings.ToUpper(cmd.Name()), keys[0], a, keys[i], b)
		}
	}
	return nil
}

// ArgString is a command argument as go-redis writes it: a *string or *int64
// as the value it points at (redisstore passes its scripts' keys so).
func ArgString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case *string:
		if v != nil {
			return *v
		}
		return ""
	case *int64:
		if v != nil {
			return strconv.FormatInt(*v, 10)
		}
		return "0"
	case []byte:
		return string(v)
	}
	return fmt.Sprint(v)
}

// commandKeys extracts the keys of the multi-key commands (nil for others).
func commandKeys(args []any) []string {
	if len(args) < 2 {
		return nil
	}
	str := ArgString
	rest := make([]string, len(args)-1)
	for i, a := range args[1:] {
		rest[i] = str(a)
	}
	switch strings.ToLower(str(args[0])) {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		// script numkeys key... arg...
		if len(rest) < 2 {
			return nil
		}
		n, err := strconv.Atoi(rest[1])
		if err != nil || n < 0 || 2+n > len(rest) {
			return nil
		}
		return rest[2 : 2+n]
	case "del", "unlink", "exists", "mget", "touch", "watch", "sunion", "sinter", "sdiff", "sunionstore",
		"sinterstore", "sdiffstore", "pfcount", "pfmerge", "rename", "renamenx", "rpoplpush", "sintercard":
		return rest
	case "smove", "lmove", "blmove", "copy":
		if len(rest) >= 2 {
			return rest[:2]
		}
	case "mset", "msetnx":
		var keys []string
		for i := 0; i < len(rest); i += 2 {
			keys = append(keys, rest[i])
		}
		return keys
	case "blpop", "brpop", "bzpopmin", "bzpopmax":
		return rest[:len(rest)-1] // the last argument is the timeout
	case "zunionstore", "zinterstore", "zdiffstore":
		// destination numkeys key...
		if len(rest) < 2 {
			return nil
		}
		n, err := strconv.Atoi(rest[1])
		if err != nil || n < 0 || 2+n > len(rest) {
			return nil
		}
		return append([]string{rest[0]}, rest[2:2+n]...)
	case "xread", "xreadgroup":
		for i, a := range rest {
			if strings.EqualFold(a, "streams") {
				ids := rest[i+1:]
				return ids[:len(ids)/2]
			}
		}
	}
	return nil
}
