package mockupstream

import (
	"sync"

	"github.com/pkoukk/tiktoken-go"
	tiktokenloader "github.com/pkoukk/tiktoken-go-loader"
)

var (
	referenceMu sync.Mutex
	references  = map[string]*tiktoken.Tiktoken{}
)

// ReferenceTokenizer is tiktoken-go's own encoder of an encoding, built by
// tiktoken.GetEncoding with the offline loader: the independent count the tests hold
// the mock's usage to. GetEncoding builds a new encoder each call, so it is kept.
func ReferenceTokenizer(name string) (*tiktoken.Tiktoken, error) {
	referenceMu.Lock()
	defer referenceMu.Unlock()
	if tk, ok := references[name]; ok {
		return tk, nil
	}
	// The mock itself never reads this global, so setting it here races with nothing.
	tiktoken.SetBpeLoader(tiktokenloader.NewOfflineLoader())
	tk, err := tiktoken.GetEncoding(name)
	if err != nil {
		return nil, err
	}
	references[name] = tk
	return tk, nil
}
