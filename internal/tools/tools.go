//go:build tools

// Package tools pins modules that the build does not import yet, so `go mod tidy`
// keeps them while the packages that use them are being written.
package tools

import (
	_ "github.com/alicebob/miniredis/v2"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/openai/openai-go/v3"
	_ "github.com/pkoukk/tiktoken-go"
	_ "github.com/pkoukk/tiktoken-go-loader"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/viper"
	_ "go.uber.org/zap"
	_ "pgregory.net/rapid"
)
