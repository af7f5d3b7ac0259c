package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce is how long Watch waits after the last file event before reloading,
// so an editor's truncate-then-write or write-then-rename is read once, whole.
const debounce = 100 * time.Millisecond

// Watch reloads the file at path whenever its content changes, until ctx is done.
// It watches the file's directory rather than the file, so that editors and
// tools that replace the file (write a temporary file, rename it over) are seen
// too, as are Kubernetes ConfigMap symlink swaps.
//
// Each change is loaded like Load does (environment overrides included). A valid
// result goes to onReload; a bad edit's error (a *Problems naming each key, or a
// read error) goes to onError, and the caller keeps its current config. An empty
// file is taken for a save in progress and ignored. The
// callbacks run one at a time on Watch's goroutine. Watch returns once the watch
// is in place, or an error if it cannot be set up.
func Watch(ctx context.Context, path string, onReload func(*Config), onError func(error)) error {
	if path == "" {
		return errors.New("config: Watch needs a file path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config: watching %s: %w", path, err)
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		return fmt.Errorf("config: watching %s: %w", path, err)
	}
	// The content loaded at start-up: an event that leaves it unchanged (a touch,
	// an unrelated file in the directory) reloads nothing.
	last, _ := os.ReadFile(abs)
	go watchLoop(ctx, w, abs, last, onReload, onError)
	return nil
}

func watchLoop(ctx context.Context, w *fsnotify.Watcher, path string, last []byte, onReload func(*Config), onError func(error)) {
	defer w.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-w.Events:
			if !ok {
				return
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			onError(fmt.Errorf("config: watching %s: %w", path, err))
		case <-timer.C:
			data, err := os.ReadFile(path)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) && last == nil {
					continue // still absent: nothing changed
				}
				last = nil
				onError(fmt.Errorf("config: %w", err))
				continue
			}
			if last != nil && bytes.Equal(data, last) {
				continue
			}
			if len(bytes.TrimSpace(data)) == 0 {
				// Truncated by a writer that has not written yet (an in-place
				// save); its write will bring another event.
				continue
			}
			last = data
			cfg, err := LoadBytes(data, environ())
			if err != nil {
				onError(err)
				continue
			}
			onReload(cfg)
		}
	}
}

// ReloadDiff lists, sorted, the keys whose values differ between old and new
// but only take effect after a restart: every key except those hotReloadable
// accepts. The caller logs them so an operator knows a reload was partial.
func ReloadDiff(old, new *Config) []string {
	if old == nil || new == nil {
		return nil
	}
	o, n := reflect.ValueOf(old).Elem(), reflect.ValueOf(new).Elem()
	var keys []string
	for _, f := range schema() {
		if hotReloadable(f.key) {
			continue
		}
		if !reflect.DeepEqual(o.FieldByIndex(f.index).Interface(), n.FieldByIndex(f.index).Interface()) {
			keys = append(keys, f.key)
		}
	}
	sort.Strings(keys)
	return keys
}

// hotReloadable reports whether a change of key applies without a restart: the
// pricing, the billing policy (tiers, grace, clamping, minimum purchase, credit
// and hold lifetimes, the minimum auto-recharge amount), the drift tolerance, the
// log level and the notice thresholds. The webhooks are not: their senders are
// built at start, so adding, removing or re-pointing one waits for a restart.
func hotReloadable(key string) bool {
	switch key {
	case "billing.tiers", "billing.default_tier", "billing.grace", "billing.clamp_max_tokens",
		"billing.min_purchase", "billing.credit_ttl", "billing.hold_ttl", "billing.auto_recharge.min_amount",
		"metering.drift_tolerance", "metering.count_prompts", "logging.level", "notify.low_balance", "notify.expiring_within":
		return true
	}
	return strings.HasPrefix(key, "pricing.")
}
